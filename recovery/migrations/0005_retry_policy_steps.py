"""Retry policies become per-category steps: existing policies get the steps that do what their settings did."""

from django.db import migrations, models

import recovery.steps


def to_steps(apps, schema_editor):
    RetryPolicy = apps.get_model("recovery", "RetryPolicy")
    for policy in RetryPolicy.objects.all().iterator():
        policy.steps = recovery.steps.from_legacy(
            max_retries=policy.max_retries,
            initial_delay_seconds=policy.initial_delay_seconds,
            backoff_multiplier=policy.backoff_multiplier,
            max_delay_seconds=policy.max_delay_seconds,
            max_notifications=policy.max_notifications,
            notification_interval_seconds=policy.notification_interval_seconds,
            notify_on_hard_decline=policy.notify_on_hard_decline,
            category_overrides=policy.category_overrides,
        )
        policy.save(update_fields=["steps"])


class Migration(migrations.Migration):

    dependencies = [
        ("recovery", "0004_attempt_psp_calls"),
    ]

    operations = [
        migrations.AddField(
            model_name="retrypolicy",
            name="steps",
            field=models.JSONField(blank=True, default=recovery.steps.default_steps),
        ),
        migrations.RunPython(to_steps, migrations.RunPython.noop),
    ]
