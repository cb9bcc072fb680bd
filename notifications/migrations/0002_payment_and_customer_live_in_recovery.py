"""Messages point at Customer and Payment in the recovery app (recovery 0009). State only: the columns and their foreign keys do not change."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0001_initial'),
        ('recovery', '0009_customer_and_payment_move_from_payments'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name='notification',
                    name='customer',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='notifications', to='recovery.customer'),
                ),
                migrations.AlterField(
                    model_name='notification',
                    name='payment',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='webhookmessage',
                    name='payment',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='recovery.payment'),
                ),
            ],
        ),
    ]
