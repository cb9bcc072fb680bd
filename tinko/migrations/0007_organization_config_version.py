from django.db import migrations, models

from tinko.orgconfig import function_operations


class Migration(migrations.Migration):
    """The organization's configuration version (tinko/orgconfig.py) and the trigger function that raises it;
    the apps attach it to their tables (recovery, payments, notifications)."""

    dependencies = [
        ("tinko", "0006_api_request_log"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="config_version",
            field=models.BigIntegerField(default=0, db_default=0, editable=False),
        ),
        *function_operations(),
    ]
