from django.db import migrations

from tinko.orgconfig import trigger_operations


class Migration(migrations.Migration):
    """A PSP account's change raises its organization's config_version (tinko/orgconfig.py)."""

    dependencies = [
        ("payments", "0013_webhook_inbox_processing"),
        ("tinko", "0007_organization_config_version"),
    ]

    operations = trigger_operations("payments_provideraccount")
