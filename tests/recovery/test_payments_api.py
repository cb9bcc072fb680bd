"""The payments API: list, detail, and the manual actions (new pay link, retry now, cancel).

Payments are created the way merchants create them, through
``POST /api/v1/events/payment_failed``; a payment is only marked recovered
through :func:`recovery.transitions.recover`, the one code path that does it.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote, urlsplit

import pytest
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from recovery import services, transitions
from recovery.models import (
    AttemptKind,
    AttemptStatus,
    LinkStatus,
    Payment,
    PaymentStatus,
    RecoveryAttempt,
    RecoveryLink,
    RetryPolicy,
)
from recovery.services import RecoveryError
from tests.conftest import always_quiet
from tests.recovery.conftest import report
from tinko.models import AuditEvent, hash_token

pytestmark = pytest.mark.django_db

EXPIRED_CARD = {"code": "card_declined", "decline_code": "expired_card", "message": "Your card has expired."}
MASTERCARD_DO_NOT_RETRY = {"code": "card_declined", "network_advice_code": "03", "message": "Do not honor."}


def ingest(api, **overrides) -> dict:
    """Report one failure through the API; the response body of the 201."""
    response = api.post("events/payment_failed", report(**overrides))
    assert response.status_code == 201, response.content
    return response.json()


def payment_path(reference: str, action: str = "") -> str:
    path = "payments/" + quote(reference, safe="/")
    return f"{path}/{action}" if action else path


def mark_recovered(reference: str) -> None:
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(reference=reference)
        transitions.recover(payment=payment, amount=payment.amount, now=timezone.now(), channel="psp")


def references(response) -> list[str]:
    return [p["reference"] for p in response.json()["results"]]


def _local(url: str | None) -> str | None:
    """A pagination link as a path the test client can follow."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def audit_actions(org) -> list[str]:
    return list(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))


# --- List -------------------------------------------------------------------------


def test_list_is_newest_first(api):
    for ref in ("first", "second", "third"):
        ingest(api, reference=ref)

    response = api.get("payments")

    assert response.status_code == 200
    assert references(response) == ["third", "second", "first"]


def test_list_filters_by_status(api):
    ingest(api, reference="open")
    ingest(api, reference="stopped")
    assert api.post(payment_path("stopped", "cancel")).status_code == 200

    assert references(api.get("payments", {"status": "cancelled"})) == ["stopped"]


def test_list_filters_by_category(api):
    ingest(api, reference="broke")
    ingest(api, reference="expired", failure=EXPIRED_CARD)

    assert references(api.get("payments", {"category": "expired_card"})) == ["expired"]
    assert references(api.get("payments", {"category": "insufficient_funds"})) == ["broke"]


def test_list_filters_by_provider(api):
    ingest(api, reference="on-sandbox", provider="sandbox")
    ingest(api, reference="on-stripe", provider="stripe")

    assert references(api.get("payments", {"provider": "stripe"})) == ["on-stripe"]


def test_list_filters_by_created_range(api):
    for ref in ("early", "middle", "late"):
        ingest(api, reference=ref)
    middle = Payment.objects.get(reference="middle").created_at.isoformat()

    assert references(api.get("payments", {"created_after": middle})) == ["late", "middle"]
    assert references(api.get("payments", {"created_before": middle})) == ["early"]


def test_list_with_an_invalid_filter_value_is_a_400_naming_the_fields(api):
    response = api.get("payments", {"status": "lost", "created_after": "yesterday"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert set(error["fields"]) == {"status", "created_after"}


def test_list_pages_with_a_cursor_returning_every_payment_once(api):
    created = [f"order-{n}" for n in range(5)]
    for ref in created:
        ingest(api, reference=ref)

    seen, pages, path = [], [], "/api/v1/payments?limit=2"
    while path:
        response = api.client.get(path, headers=api.headers)
        assert response.status_code == 200
        body = response.json()
        pages.append(body)
        seen += [p["reference"] for p in body["results"]]
        path = _local(body["next"])

    assert seen == list(reversed(created))
    assert [len(page["results"]) for page in pages] == [2, 2, 1]
    assert pages[0]["previous"] is None
    assert pages[1]["previous"] is not None and pages[2]["previous"] is not None
    assert pages[2]["next"] is None


def test_previous_link_returns_the_page_before(api):
    for n in range(5):
        ingest(api, reference=f"order-{n}")
    first = api.client.get("/api/v1/payments?limit=2", headers=api.headers).json()
    second = api.client.get(_local(first["next"]), headers=api.headers).json()

    back = api.client.get(_local(second["previous"]), headers=api.headers).json()

    assert [p["reference"] for p in back["results"]] == [p["reference"] for p in first["results"]]


def test_list_never_includes_another_organizations_payments(api, other_api):
    ingest(api, reference="ours")
    ingest(other_api, reference="theirs")

    assert references(api.get("payments")) == ["ours"]


# --- Detail -----------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["INV/2026/001", "order 42", "a/b c/d"], ids=["slashes", "space", "both"])
def test_detail_finds_references_with_slashes_and_spaces(api, reference):
    ingest(api, reference=reference)

    response = api.get(payment_path(reference))

    assert response.status_code == 200, response.content
    assert response.json()["reference"] == reference


def test_detail_finds_a_reference_with_an_encoded_slash(api):
    ingest(api, reference="INV/2026/001")

    response = api.get("payments/INV%2F2026%2F001")

    assert response.status_code == 200
    assert response.json()["reference"] == "INV/2026/001"


@pytest.mark.parametrize("action", ["recovery_link", "retry_now", "cancel", "paid"])
def test_detail_finds_a_reference_ending_in_an_action_name(api, action):
    # "renewals/cancel" is a fine merchant reference; its detail URL is also the cancel route of "renewals".
    ingest(api, reference=f"renewals/{action}")

    response = api.get(payment_path(f"renewals/{action}"))

    assert response.status_code == 200, response.content
    assert response.json()["reference"] == f"renewals/{action}"


def test_detail_shows_events_with_their_classification(api):
    ingest(api, reference="r1")
    ingest(api, reference="r1", failure=EXPIRED_CARD)

    events = api.get(payment_path("r1")).json()["events"]

    assert [e["classification"]["category"] for e in events] == ["insufficient_funds", "expired_card"]
    first = events[0]["classification"]
    assert first["retryable"] is True and first["action"] == "auto_retry" and first["reason"]
    assert events[1]["classification"]["action"] == "customer_action"


def test_detail_shows_attempts_with_status_and_reason(api):
    ingested = ingest(api, reference="r1")

    (attempt,) = api.get(payment_path("r1")).json()["attempts"]

    assert attempt["kind"] == "auto_retry"
    assert attempt["status"] == "scheduled"
    assert attempt["reason"] == ingested["next_attempt"]["reason"] != ""


def test_detail_shows_links_but_never_a_token_or_its_hash(api):
    ingest(api, reference="r1")
    url = api.post(payment_path("r1", "recovery_link")).json()["url"]
    token = url.rstrip("/").rsplit("/", 1)[1]

    response = api.get(payment_path("r1"))

    (link,) = response.json()["links"]
    assert link["status"] == "active"
    assert not {"token", "token_hash", "url"} & set(link)
    body = response.content.decode()
    assert token not in body
    assert hash_token(token) not in body


def test_detail_of_an_unknown_reference_is_a_json_404(api):
    response = api.get(payment_path("no-such-order"))

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["type"] == "not_found"


def test_detail_of_another_organizations_payment_is_a_404(api, other_api):
    ingest(other_api, reference="theirs")

    assert api.get(payment_path("theirs")).status_code == 404


def test_the_same_reference_in_two_organizations_are_two_payments(api, other_api):
    ingest(api, reference="shared", amount=100)
    ingest(other_api, reference="shared", amount=999)

    assert api.get(payment_path("shared")).json()["amount"] == 100
    assert other_api.get(payment_path("shared")).json()["amount"] == 999


@pytest.mark.parametrize("action", ["recovery_link", "retry_now", "cancel", "paid"])
def test_actions_on_another_organizations_payment_are_404_and_change_nothing(api, other_api, action):
    ingest(other_api, reference="theirs")

    response = api.post(payment_path("theirs", action))

    assert response.status_code == 404
    payment = Payment.objects.get(reference="theirs")
    assert payment.status == PaymentStatus.RECOVERING
    assert not payment.links.exists()
    assert payment.attempts.count() == 1


# --- recovery_link ----------------------------------------------------------------


def test_recovery_link_answers_201_with_a_url_holding_the_token(api):
    ingest(api, reference="r1")

    response = api.post(payment_path("r1", "recovery_link"))

    assert response.status_code == 201
    body = response.json()
    assert body["url"].startswith("http://testserver/pay/")
    token = body["url"].rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert body["status"] == "active"
    assert parse_datetime(body["expires_at"]) - parse_datetime(body["created_at"]) == timedelta(hours=48)


def test_recovery_link_stores_only_the_tokens_sha256(api):
    ingest(api, reference="r1")
    url = api.post(payment_path("r1", "recovery_link")).json()["url"]
    token = url.rstrip("/").rsplit("/", 1)[1]

    (link,) = RecoveryLink.objects.filter(payment__reference="r1")

    assert link.token_hash == hash_token(token)
    stored = {str(v) for v in RecoveryLink.objects.filter(pk=link.pk).values().get().values()}
    assert token not in stored


def test_a_new_recovery_link_revokes_the_earlier_live_one(api):
    ingest(api, reference="r1")
    first = api.post(payment_path("r1", "recovery_link")).json()

    second = api.post(payment_path("r1", "recovery_link")).json()

    assert first["url"] != second["url"]
    statuses = dict(RecoveryLink.objects.values_list("pk", "status"))
    assert statuses == {first["id"]: LinkStatus.REVOKED, second["id"]: LinkStatus.ACTIVE}


def test_recovery_link_on_a_recovered_payment_is_a_409(api):
    ingest(api, reference="r1")
    mark_recovered("r1")

    response = api.post(payment_path("r1", "recovery_link"))

    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"
    assert "recovered" in response.json()["error"]["message"]
    assert not RecoveryLink.objects.exists()


def test_recovery_link_on_a_cancelled_payment_is_a_409(api):
    ingest(api, reference="r1")
    api.post(payment_path("r1", "cancel"))

    response = api.post(payment_path("r1", "recovery_link"))

    assert response.status_code == 409
    assert "cancelled" in response.json()["error"]["message"]
    assert not RecoveryLink.objects.exists()


def test_recovery_link_is_audited(api, org, api_key):
    ingest(api, reference="r1")
    link_id = api.post(payment_path("r1", "recovery_link")).json()["id"]

    event = AuditEvent.objects.get(organization=org, action="link.created")

    assert event.actor_api_key == api_key[0]
    assert event.target_id == str(link_id)
    assert event.data["payment"] == "r1"


# --- retry_now --------------------------------------------------------------------


def test_retry_now_schedules_an_automatic_retry_for_now(api):
    ingest(api, reference="r1")
    # Outside quiet hours whatever the hour of the test (inside them see the next tests).
    RetryPolicy.objects.update(quiet_hours_start=None, quiet_hours_end=None)
    before = timezone.now()

    response = api.post(payment_path("r1", "retry_now"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == AttemptKind.AUTO_RETRY
    assert body["status"] == AttemptStatus.SCHEDULED
    assert before <= parse_datetime(body["scheduled_for"]) <= timezone.now()
    assert body["reason"].startswith("Re-charge requested by API key")


def test_retry_now_cancels_the_attempt_it_replaces(api):
    planned = ingest(api, reference="r1")["next_attempt"]
    assert parse_datetime(planned["scheduled_for"]) > timezone.now()

    new = api.post(payment_path("r1", "retry_now")).json()

    attempts = {a.sequence: a for a in RecoveryAttempt.objects.filter(payment__reference="r1")}
    assert attempts[1].status == AttemptStatus.CANCELLED
    assert attempts[1].outcome == "Replaced by a manual retry."
    assert new["sequence"] == 2 and attempts[2].status == AttemptStatus.SCHEDULED
    assert [a.pk for a in attempts.values() if a.status == AttemptStatus.SCHEDULED] == [attempts[2].pk]


def test_retry_now_is_refused_after_a_mastercard_do_not_retry_advice(api):
    ingest(
        api, reference="r1", failure=MASTERCARD_DO_NOT_RETRY,
        payment_method={"brand": "mastercard", "last4": "4444", "fingerprint": "fp_mc"},
    )

    response = api.post(payment_path("r1", "retry_now"))

    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert "card network forbids" in message
    assert "Mastercard advice code 03: Do not try again" in message
    assert not RecoveryAttempt.objects.filter(payment__reference="r1", kind=AttemptKind.AUTO_RETRY).exists()


def test_retry_now_is_refused_when_the_provider_cannot_recharge(api):
    ingest(api, reference="r1", provider="stripe")
    attempts_before = RecoveryAttempt.objects.count()

    response = api.post(payment_path("r1", "retry_now"))

    assert response.status_code == 409
    assert "connected Stripe account" in response.json()["error"]["message"]
    assert RecoveryAttempt.objects.count() == attempts_before


def test_retry_now_on_a_recovered_payment_is_a_409(api):
    ingest(api, reference="r1")
    mark_recovered("r1")

    response = api.post(payment_path("r1", "retry_now"))

    assert response.status_code == 409
    assert "recovered" in response.json()["error"]["message"]


def test_retry_now_in_quiet_hours_waits_for_their_end_and_says_so(api):
    ingest(api, reference="r1")
    always_quiet(Payment.objects.get(reference="r1"))

    body = api.post(payment_path("r1", "retry_now")).json()

    assert parse_datetime(body["scheduled_for"]) > timezone.now() + timedelta(hours=23)
    assert "moved to the end of the customer's quiet hours" in body["reason"]


def test_an_api_key_cannot_override_quiet_hours(api, org, api_key):
    ingest(api, reference="r1")
    payment = Payment.objects.get(reference="r1")
    with pytest.raises(RecoveryError, match="Only a person"):
        services.retry_now(payment=payment, actor=api_key[0], override_quiet_hours=True)


def test_retry_now_is_audited(api, org, api_key):
    ingest(api, reference="r1")
    sequence = api.post(payment_path("r1", "retry_now")).json()["sequence"]

    event = AuditEvent.objects.get(organization=org, action="payment.retry_requested")

    assert event.actor_api_key == api_key[0]
    assert event.data == {"reference": "r1", "attempt": sequence, "override_quiet_hours": False}


# --- cancel -----------------------------------------------------------------------


def test_cancel_marks_the_payment_cancelled(api):
    ingest(api, reference="r1")

    response = api.post(payment_path("r1", "cancel"))

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert Payment.objects.get(reference="r1").status == PaymentStatus.CANCELLED


def test_cancel_cancels_scheduled_attempts(api):
    ingest(api, reference="r1")

    api.post(payment_path("r1", "cancel"))

    statuses = set(RecoveryAttempt.objects.filter(payment__reference="r1").values_list("status", flat=True))
    assert statuses == {AttemptStatus.CANCELLED}


def test_cancel_revokes_live_links(api):
    ingest(api, reference="r1")
    api.post(payment_path("r1", "recovery_link"))

    api.post(payment_path("r1", "cancel"))

    assert set(RecoveryLink.objects.values_list("status", flat=True)) == {LinkStatus.REVOKED}


def test_cancelling_twice_is_harmless(api, org):
    ingest(api, reference="r1")
    api.post(payment_path("r1", "cancel"))

    response = api.post(payment_path("r1", "cancel"))

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert audit_actions(org).count("payment.cancelled") == 1


def test_cancel_on_a_recovered_payment_is_a_409(api):
    ingest(api, reference="r1")
    mark_recovered("r1")

    response = api.post(payment_path("r1", "cancel"))

    assert response.status_code == 409
    assert Payment.objects.get(reference="r1").status == PaymentStatus.RECOVERED


def test_cancel_is_audited(api, org, api_key):
    ingest(api, reference="r1")
    api.post(payment_path("r1", "cancel"))

    event = AuditEvent.objects.get(organization=org, action="payment.cancelled")

    assert event.actor_api_key == api_key[0]
    assert event.data == {"reference": "r1", "from": "recovering"}


def test_cancel_with_an_idempotency_key_replays_the_first_response(api, org):
    ingest(api, reference="r1")
    first = api.post(payment_path("r1", "cancel"), **{"Idempotency-Key": "cancel-r1"})

    replay = api.post(payment_path("r1", "cancel"), **{"Idempotency-Key": "cancel-r1"})

    assert first.status_code == replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert replay.json() == first.json()


def test_an_idempotency_key_reused_for_another_payment_is_a_409(api):
    ingest(api, reference="r1")
    ingest(api, reference="r2")
    api.post(payment_path("r1", "cancel"), **{"Idempotency-Key": "cancel-once"})

    response = api.post(payment_path("r2", "cancel"), **{"Idempotency-Key": "cancel-once"})

    assert response.status_code == 409
    assert Payment.objects.get(reference="r2").status == PaymentStatus.RECOVERING


# --- paid (outside Tinko) -------------------------------------------------------------


def test_reporting_a_payment_paid_outside_tinko_ends_its_recovery_without_attribution(api):
    ingest(api, reference="bank-transfer")

    response = api.post(payment_path("bank-transfer", "paid"), {"amount": 60})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "recovered"
    payment = Payment.objects.get(reference="bank-transfer")
    assert payment.recovered_amount == 60 and payment.recovered_channel == "" and payment.recovered_attempt is None
    assert "outside Tinko" in payment.status_reason
    assert not payment.attempts.filter(status=AttemptStatus.SCHEDULED).exists()
    assert AuditEvent.objects.filter(action="payment.reported_paid", target_id=str(payment.pk)).exists()


def test_reporting_paid_twice_changes_nothing_the_second_time(api):
    ingest(api, reference="twice")
    api.post(payment_path("twice", "paid"))
    recovered_at = Payment.objects.get(reference="twice").recovered_at

    response = api.post(payment_path("twice", "paid"), {"amount": 1})

    assert response.status_code == 200
    payment = Payment.objects.get(reference="twice")
    assert payment.recovered_at == recovered_at and payment.recovered_amount == payment.amount


@pytest.mark.parametrize("amount", [0, -5, 10**9, "ten"])
def test_reporting_paid_with_an_impossible_amount_is_a_400_and_changes_nothing(api, amount):
    ingest(api, reference="odd")

    response = api.post(payment_path("odd", "paid"), {"amount": amount})

    assert response.status_code == 400
    assert "amount" in response.json()["error"]["fields"]
    assert Payment.objects.get(reference="odd").status == PaymentStatus.RECOVERING


def test_a_held_out_payment_reported_paid_counts_as_recovered(api):
    ingest(api, reference="held")
    Payment.objects.filter(reference="held").update(holdout_group="holdout", status=PaymentStatus.FAILED)

    assert api.post(payment_path("held", "paid")).status_code == 200

    payment = Payment.objects.get(reference="held")
    assert payment.status == PaymentStatus.RECOVERED and payment.holdout_group == "holdout"
