"""Customer and Payment now belong to the recovery app (recovery 0009), which keeps their tables.

State only: the adapter's rows keep their payment_id columns and foreign keys,
which now point at recovery's Payment; the tables payments_customer and
payments_payment are not dropped, recovery owns them.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0002_payment_and_customer_live_in_recovery'),
        ('payments', '0011_payment_provider_from_registry'),
        ('recovery', '0009_customer_and_payment_move_from_payments'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name='razorpayorderclaim',
                    name='payment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='providersuccess',
                    name='payment',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='reconciliationcheck',
                    name='payment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reconciliation_checks', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='sandboxcharge',
                    name='payment',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='sandbox_charges', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='webhookmessage',
                    name='payment',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='webhook_messages', to='recovery.payment'),
                ),
                migrations.DeleteModel(name='Payment'),
                migrations.DeleteModel(name='Customer'),
            ],
        ),
    ]
