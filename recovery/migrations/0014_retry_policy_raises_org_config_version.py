from django.db import migrations

from tinko.orgconfig import trigger_operations


class Migration(migrations.Migration):
    """A retry policy's change raises its organization's config_version (tinko/orgconfig.py)."""

    dependencies = [
        ("recovery", "0013_customer_phone_checked_with_phonenumbers"),
        ("tinko", "0007_organization_config_version"),
    ]

    operations = trigger_operations("recovery_retrypolicy")
