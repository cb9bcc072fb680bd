"""Customer and Payment rows of other tables follow the models to the recovery app.

Django's content types (and with them staff permissions and the admin's change
history) name a model by app label, and audit entries name their target as
``<app>.<model>`` (tinko.services.audit): both are relabelled from ``payments``
to ``recovery``, so that permissions granted before the move still hold and a
payment's timeline still finds its audit entries. Reversible.
"""

from django.db import migrations

MODELS = ("customer", "payment")


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    AuditEvent = apps.get_model("tinko", "AuditEvent")
    for model in MODELS:
        # Should the new label exist already (post_migrate creates content types for the models of the code
        # that ran it), both rows are kept rather than break (app_label, model) uniqueness.
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)
        AuditEvent.objects.filter(target_type=f"{old}.{model}").update(target_type=f"{new}.{model}")


def forwards(apps, schema_editor):
    _relabel(apps, "payments", "recovery")


def backwards(apps, schema_editor):
    _relabel(apps, "recovery", "payments")


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('recovery', '0009_customer_and_payment_move_from_payments'),
        ('tinko', '0006_api_request_log'),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
