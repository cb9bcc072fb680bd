"""Notifications are scheduled and retried by their own rows (next_attempt_at, a lease while sending), no longer by
Dramatiq retries and a re-queue job. Messages queued before this are due at once."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0002_payment_and_customer_live_in_recovery'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='notification',
            name='notification_queued',
        ),
        migrations.AddField(
            model_name='notification',
            name='next_attempt_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='notification',
            name='sending_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='notification',
            index=models.Index(condition=models.Q(('status', 'queued')), fields=['next_attempt_at'], name='notification_due'),
        ),
        migrations.RunSQL(
            "UPDATE notifications_notification SET next_attempt_at = updated_at WHERE status = 'queued'",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
