from django.db import migrations

from tinko.orgconfig import trigger_operations


class Migration(migrations.Migration):
    """A webhook endpoint's change raises its organization's config_version (tinko/orgconfig.py)."""

    dependencies = [
        ("notifications", "0003_notification_retried_by_row"),
        ("tinko", "0007_organization_config_version"),
    ]

    operations = trigger_operations("notifications_webhookendpoint")
