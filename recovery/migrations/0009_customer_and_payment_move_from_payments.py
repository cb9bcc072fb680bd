"""Customer and Payment move from the payments app to recovery, the domain core that owns their lifecycle.

The move changes Django's picture of the models, not the database: the tables
(payments_customer, payments_payment), their columns, indexes, constraints and
foreign keys stay as they are, so no row is rewritten and no lock is taken.
The foreign keys of other apps that point at them follow in each app's own
state-only migration (notifications 0002, payments 0012); content types and
audit entries are relabelled by 0010.
"""

import django.core.validators
import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.db import migrations, models

import tinko.models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0011_payment_provider_from_registry'),
        ('recovery', '0008_retry_policy_defaults_payday_alignment_28_day_window'),
        ('tinko', '0006_api_request_log'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='Customer',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('key', models.CharField(editable=False, max_length=260)),
                        ('external_id', models.CharField(blank=True, max_length=200)),
                        ('email', models.EmailField(blank=True, max_length=254)),
                        ('phone', models.CharField(blank=True, max_length=16, validators=[django.core.validators.RegexValidator('^\\+[1-9]\\d{6,14}$', 'Enter a phone number in E.164 form, e.g. +14155550123.')])),
                        ('name', models.CharField(blank=True, max_length=200)),
                        ('locale', models.CharField(blank=True, max_length=35)),
                        ('timezone', models.CharField(blank=True, max_length=64, validators=[tinko.models.validate_timezone])),
                        ('opted_out_channels', models.JSONField(blank=True, default=list)),
                        ('provider_customer_id', models.CharField(blank=True, max_length=200)),
                        ('provider_fetched_at', models.DateTimeField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='customers', to='tinko.organization')),
                    ],
                    options={
                        'db_table': 'payments_customer',
                        'indexes': [
                            models.Index(condition=models.Q(('provider_customer_id', ''), _negated=True), fields=['organization', 'provider_customer_id'], name='customer_org_psp_id'),
                            models.Index(models.F('organization'), django.db.models.functions.text.Lower('email'), name='customer_org_email_lower'),
                            models.Index(fields=['organization', '-created_at', '-id'], name='customer_org_created'),
                        ],
                        'constraints': [
                            models.UniqueConstraint(fields=('organization', 'key'), name='customer_unique_key_per_org'),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name='Payment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('reference', models.CharField(max_length=200)),
                        ('provider', models.CharField(max_length=10)),
                        ('provider_payment_id', models.CharField(blank=True, max_length=200)),
                        ('amount', models.BigIntegerField(validators=[django.core.validators.MinValueValidator(1)])),
                        ('currency', models.CharField(max_length=3, validators=[tinko.models.validate_currency])),
                        ('description', models.CharField(blank=True, max_length=500)),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                        ('card_brand', models.CharField(blank=True, max_length=20)),
                        ('card_last4', models.CharField(blank=True, max_length=4)),
                        ('card_exp_month', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('card_exp_year', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('card_fingerprint', models.CharField(blank=True, max_length=100)),
                        ('provider_customer_id', models.CharField(blank=True, max_length=200)),
                        ('provider_payment_method_id', models.CharField(blank=True, max_length=200)),
                        ('provider_retry_at', models.DateTimeField(blank=True, null=True)),
                        ('status', models.CharField(choices=[('failed', 'Failed'), ('recovering', 'Recovering'), ('recovered', 'Recovered'), ('exhausted', 'Exhausted'), ('cancelled', 'Cancelled')], default='failed', max_length=10)),
                        ('category', models.CharField(blank=True, max_length=30)),
                        ('status_reason', models.TextField(blank=True)),
                        ('failure_count', models.PositiveIntegerField(default=0)),
                        ('first_failed_at', models.DateTimeField()),
                        ('last_failed_at', models.DateTimeField()),
                        ('recovery_ends_at', models.DateTimeField(blank=True, null=True)),
                        ('recovered_at', models.DateTimeField(blank=True, null=True)),
                        ('recovered_amount', models.BigIntegerField(blank=True, null=True)),
                        ('recovered_channel', models.CharField(blank=True, choices=[('psp', 'Automatic re-charge'), ('email', 'Email'), ('sms', 'SMS'), ('whatsapp', 'WhatsApp')], max_length=10)),
                        ('cancelled_at', models.DateTimeField(blank=True, null=True)),
                        ('holdout_group', models.CharField(blank=True, choices=[('treatment', 'Recovered by Tinko'), ('holdout', 'Held out (no recovery actions)')], max_length=10)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('customer', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='payments', to='recovery.customer')),
                        ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='payments', to='tinko.organization')),
                        ('policy', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='payments', to='recovery.retrypolicy')),
                        ('provider_account', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='payments', to='payments.provideraccount')),
                        ('recovered_attempt', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='recovery.recoveryattempt')),
                    ],
                    options={
                        'db_table': 'payments_payment',
                        'indexes': [
                            models.Index(fields=['organization', '-created_at', '-id'], name='payment_org_created'),
                            models.Index(fields=['organization', 'status', '-created_at'], name='payment_org_status_created'),
                            models.Index(fields=['organization', 'category', '-created_at'], name='payment_org_category_created'),
                            models.Index(fields=['organization', 'provider', '-created_at'], name='payment_org_provider_created'),
                            models.Index(condition=models.Q(('recovered_channel', ''), _negated=True), fields=['organization', 'recovered_channel', '-created_at'], name='payment_org_channel_created'),
                            models.Index(fields=['organization', 'card_last4'], name='payment_org_last4'),
                            models.Index(fields=['organization', 'reference'], name='payment_org_reference_prefix', opclasses=['int8_ops', 'varchar_pattern_ops']),
                            models.Index(fields=['organization', 'first_failed_at'], name='payment_org_first_failed'),
                            models.Index(fields=['organization', 'updated_at'], name='payment_org_updated'),
                            models.Index(condition=models.Q(('status__in', ['failed', 'recovering'])), fields=['recovery_ends_at'], name='payment_open_window'),
                        ],
                        'constraints': [
                            models.UniqueConstraint(fields=('organization', 'reference'), name='payment_unique_reference_per_org'),
                            models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='payment_amount_positive'),
                        ],
                    },
                ),
                migrations.AlterField(
                    model_name='failureevent',
                    name='payment',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='failure_events', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='recoveryattempt',
                    name='payment',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='attempts', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='recoverylink',
                    name='payment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='links', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='failureevent',
                    name='payment',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='failure_events', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='recoveryattempt',
                    name='payment',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='attempts', to='recovery.payment'),
                ),
                migrations.AlterField(
                    model_name='recoverylink',
                    name='payment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='links', to='recovery.payment'),
                ),
            ],
        ),
    ]
