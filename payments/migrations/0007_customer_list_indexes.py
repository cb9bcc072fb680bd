from django.db import migrations, models

# The name-prefix index exists on PostgreSQL only (local mode's SQLite has no "C" collation, and its
# few rows need no index); payments.selectors searches with the same expression there.
NAME_PREFIX_SQL = (
    'CREATE INDEX IF NOT EXISTS "customer_org_name_prefix" ON "payments_customer" '
    '("organization_id", (LOWER("name") COLLATE "C"))'
)


def create_name_prefix_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NAME_PREFIX_SQL)


def drop_name_prefix_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('DROP INDEX IF EXISTS "customer_org_name_prefix"')


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0006_webhook_body_stub'),
        ('tinko', '0005_user_language'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(fields=['organization', '-created_at', '-id'], name='customer_org_created'),
        ),
        migrations.RunPython(create_name_prefix_index, drop_name_prefix_index),
    ]
