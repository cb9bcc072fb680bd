"""The old "retries with backoff, then messages" settings: replaced by ``steps`` (0004 converted them)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("recovery", "0005_retry_policy_steps"),
    ]

    operations = [
        migrations.RemoveField(model_name="retrypolicy", name="max_retries"),
        migrations.RemoveField(model_name="retrypolicy", name="initial_delay_seconds"),
        migrations.RemoveField(model_name="retrypolicy", name="backoff_multiplier"),
        migrations.RemoveField(model_name="retrypolicy", name="max_delay_seconds"),
        migrations.RemoveField(model_name="retrypolicy", name="max_notifications"),
        migrations.RemoveField(model_name="retrypolicy", name="notification_interval_seconds"),
        migrations.RemoveField(model_name="retrypolicy", name="notify_on_hard_decline"),
        migrations.RemoveField(model_name="retrypolicy", name="category_overrides"),
    ]
