"""recovery.services.card_changed: the one path for a changed card (card updater, new card, PSP events)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recovery import services
from recovery.models import AttemptStatus, Payment, RecoveryAttempt, RetryPolicy
from tests.conftest import always_quiet
from tests.recovery.conftest import report
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db

MAC03 = {"code": "card_declined", "decline_code": "generic_decline", "network_advice_code": "03"}


def ingest(api, **overrides) -> Payment:
    response = api.post("events/payment_failed", report(**overrides))
    assert response.status_code == 201, response.content
    payment = Payment.objects.get(reference=response.json()["payment"]["reference"])
    RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=None, quiet_hours_end=None)
    return payment


def card(last4, brand="mastercard", fingerprint=""):
    return {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2030, "fingerprint": fingerprint}


def test_a_new_card_is_stored_audited_and_recharged_replacing_what_was_planned(api):
    payment = ingest(api, payment_method=card("4444", "visa", "fp_old"))
    planned = payment.attempts.get(status=AttemptStatus.SCHEDULED)

    attempt, note = services.card_changed(payment=payment, source="the customer", last4="1881", exp_month=1,
                                          exp_year=2031, fingerprint="fp_new")

    payment.refresh_from_db()
    planned.refresh_from_db()
    assert (payment.card_last4, payment.card_exp_year, payment.card_fingerprint) == ("1881", 2031, "fp_new")
    assert planned.status == AttemptStatus.CANCELLED
    assert attempt.kind == "auto_retry" and attempt.scheduled_for <= timezone.now()
    assert attempt.card_key == "fp:fp_new"
    assert "The card was updated (the customer)" in attempt.reason
    assert "re-charge" in note
    assert AuditEvent.objects.filter(action="payment.card_updated", data__source="the customer").exists()


def test_a_network_stop_is_lifted_by_another_card_not_by_a_new_expiry(api):
    payment = ingest(api, payment_method=card("5100", fingerprint="fp_mc"), failure=MAC03)
    assert not payment.attempts.filter(kind="auto_retry").exists()

    same, note = services.card_changed(payment=payment, source="card updater", exp_year=2032)
    assert same is None and "forbids another attempt on this card" in note

    other, _ = services.card_changed(payment=payment, source="the customer", last4="5454", fingerprint="fp_other")
    assert other is not None and other.kind == "auto_retry"


def test_a_card_change_inside_quiet_hours_waits_for_their_end(api):
    payment = ingest(api, payment_method=card("4444", "visa", "fp_old"))
    always_quiet(payment)

    attempt, _ = services.card_changed(payment=payment, source="card updater", fingerprint="fp_new", last4="1881")

    assert attempt.scheduled_for > timezone.now() + timedelta(hours=23)
    assert "outside quiet hours" in attempt.reason


def test_a_card_change_while_a_recharge_runs_plans_nothing_more(api):
    payment = ingest(api, payment_method=card("4444", "visa", "fp_old"))
    RecoveryAttempt.objects.filter(payment=payment).update(status=AttemptStatus.RUNNING)

    attempt, note = services.card_changed(payment=payment, source="card updater", fingerprint="fp_new")

    assert attempt is None and "in progress" in note
    assert RecoveryAttempt.objects.filter(payment=payment).count() == 1
