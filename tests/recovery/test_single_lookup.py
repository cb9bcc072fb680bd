"""A single report reads its card's history within its one lookup statement when its payment is new,
and after cancelling the payment's scheduled attempts when it is not; its Idempotency-Key is claimed in
that statement too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rest_framework.response import Response

from recovery.models import NetworkLimit, Payment, RecoveryAttempt
from tests.recovery.conftest import report
from tests.recovery.test_runner import ingest
from tinko.models import IdempotencyRecord

pytestmark = pytest.mark.django_db


def _failed_retries(payment, count, *, start=1):
    now = timezone.now()
    RecoveryAttempt.objects.bulk_create([
        RecoveryAttempt(organization_id=payment.organization_id, payment=payment, sequence=i, kind="auto_retry",
                        channel="psp", status="failed", scheduled_for=now - timedelta(days=i), reason="earlier",
                        card_key=payment.card_key, amount=payment.amount, currency=payment.currency)
        for i in range(start, start + count)
    ])


def test_a_new_payments_report_reads_its_cards_history_in_its_lookup_statement(api):
    first = ingest(api)
    RecoveryAttempt.objects.filter(payment=first).delete()
    _failed_retries(first, 15)

    with CaptureQueriesContext(connection) as captured:
        second = ingest(api)  # another payment on the same card: the card's 15 re-charges count

    assert second.card_key == first.card_key
    assert second.limit_code == NetworkLimit.VISA_15_30D
    reading_cards = [q["sql"] for q in captured.captured_queries if "card_key IN" in q["sql"]]
    assert len(reading_cards) == 1 and "nextval" in reading_cards[0]


def test_a_known_payments_report_reads_its_cards_history_after_cancelling_its_scheduled_attempts(api):
    other = ingest(api)
    RecoveryAttempt.objects.filter(payment=other).delete()
    _failed_retries(other, 14)
    body = report()
    payment = ingest(api, **{k: v for k, v in body.items() if k != "event_id"})
    RecoveryAttempt.objects.filter(payment=payment).delete()
    RecoveryAttempt.objects.create(
        organization_id=payment.organization_id, payment=payment, sequence=1, kind="auto_retry", channel="psp",
        status="scheduled", scheduled_for=timezone.now() + timedelta(days=1), reason="planned",
        card_key=payment.card_key, amount=payment.amount, currency=payment.currency,
    )

    again = ingest(api, **{k: v for k, v in body.items() if k != "event_id"})  # a new failure of the same payment

    assert again.pk == payment.pk
    # Its own scheduled re-charge was replaced, not counted: 14 on the card, under the 15 the limit allows.
    assert Payment.objects.get(pk=payment.pk).limit_code == ""
    assert RecoveryAttempt.objects.filter(payment=payment, status="cancelled").count() == 1


def test_a_keyed_reports_claim_runs_in_its_lookup_statement(api):
    with CaptureQueriesContext(connection) as captured:
        first = api.post("events/payment_failed", report(), **{"Idempotency-Key": "k-lookup"})

    assert first.status_code == 201
    claims = [q["sql"] for q in captured.captured_queries if "INSERT INTO \"tinko_idempotencyrecord\"" in q["sql"]]
    assert len(claims) == 1 and "nextval" in claims[0] and "payments_payment" in claims[0]
    record = IdempotencyRecord.objects.get(key="k-lookup")
    assert record.status_code == 201 and record.response == first.json()


def test_a_view_that_reaches_no_lookup_claims_its_key_after_its_work_and_replays_if_it_was_taken(org):
    from types import SimpleNamespace

    from tinko.api.idempotency import idempotent
    from tinko.models import Organization

    calls = []

    @idempotent(retry_integrity_errors=True, claim_with_lookup=True)
    def post(view, request):
        calls.append(1)
        Organization.objects.filter(pk=org.pk).update(name="changed by the view")
        return Response({"n": len(calls)}, status=201)

    request = SimpleNamespace(headers={"Idempotency-Key": "k-after"}, method="POST", path="/x", body=b"{}",
                              auth=SimpleNamespace(organization=org))
    first = post(None, request)
    Organization.objects.filter(pk=org.pk).update(name="after the first")
    again = post(None, request)

    assert first.status_code == 201 and first.data == {"n": 1}
    assert again.status_code == 201 and again.data == {"n": 1} and again.headers["Idempotent-Replayed"] == "true"
    assert len(calls) == 2  # the second ran, found the key taken and rolled its work back
    assert Organization.objects.get(pk=org.pk).name == "after the first"


def test_a_taken_key_with_an_invalid_body_is_a_conflict_and_a_free_one_stays_free(api):
    api.post("events/payment_failed", report(reference="order-taken"), **{"Idempotency-Key": "k-taken"})

    invalid = api.post("events/payment_failed", report(amount=-1), **{"Idempotency-Key": "k-taken"})
    free = api.post("events/payment_failed", report(amount=-1), **{"Idempotency-Key": "k-free"})

    assert invalid.status_code == 409
    assert free.status_code == 400
    assert not IdempotencyRecord.objects.filter(key="k-free").exists()
