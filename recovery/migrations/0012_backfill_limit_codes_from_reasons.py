"""Limit codes for the rows planned before the planner recorded them, read once from the reasons it wrote.

The sentences are the planner's own (recovery/planner.py, check_network_limits)
as they read up to this migration; nothing reads the reasons for codes after it.
"""

from django.db import migrations

VISA = ("card-network limit", "visa_15_30d")
MASTERCARD = ("Mastercard allows at most", "mastercard_10_24h")


def backfill(apps, schema_editor):
    Payment = apps.get_model("recovery", "Payment")
    RecoveryAttempt = apps.get_model("recovery", "RecoveryAttempt")
    for marker, code in (VISA, MASTERCARD):
        RecoveryAttempt.objects.filter(reason__contains=marker, limit_code="").update(limit_code=code)
    # A payment's code is the limit that refused its re-charge (its reason says so) or moved one of them.
    Payment.objects.filter(status_reason__contains=VISA[0], limit_code="").update(limit_code=VISA[1])
    moved = RecoveryAttempt.objects.filter(limit_code=MASTERCARD[1]).values("payment_id")
    Payment.objects.filter(pk__in=moved, limit_code="").update(limit_code=MASTERCARD[1])


class Migration(migrations.Migration):

    dependencies = [
        ("recovery", "0011_attempt_and_payment_limit_code"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
