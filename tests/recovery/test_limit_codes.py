"""Ingestion records which card-network limit refused a re-charge, as a code beside the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recovery.models import NetworkLimit
from recovery.models import RecoveryAttempt
from tests.recovery.test_runner import ingest

pytestmark = pytest.mark.django_db


def test_a_recharge_the_visa_limit_refuses_leaves_its_code_on_the_payment_and_the_message(api):
    first = ingest(api)
    now = timezone.now()
    RecoveryAttempt.objects.filter(payment=first).delete()
    RecoveryAttempt.objects.bulk_create([
        RecoveryAttempt(organization_id=first.organization_id, payment=first, sequence=i, kind="auto_retry", channel="psp",
                        status="failed", scheduled_for=now - timedelta(days=i), reason="earlier", card_key=first.card_key,
                        amount=first.amount, currency=first.currency)
        for i in range(1, 16)
    ])

    second = ingest(api)  # another payment on the same card, same amount

    assert second.card_key == first.card_key
    assert second.limit_code == NetworkLimit.VISA_15_30D
    message = second.attempts.get(status="scheduled")
    assert message.kind == "notification"
    assert message.limit_code == NetworkLimit.VISA_15_30D


def test_a_plan_no_limit_touched_leaves_no_code(api):
    payment = ingest(api)
    assert payment.limit_code == ""
    assert payment.attempts.get().limit_code == ""
