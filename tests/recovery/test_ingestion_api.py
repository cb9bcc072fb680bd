"""POST /api/v1/events/payment_failed and /batch: record, classify, plan; duplicates and bad input change nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from recovery.models import Customer, FailureEvent, Payment, RecoveryAttempt
from tests.recovery.conftest import Api, concurrently, report
from tinko.models import IdempotencyRecord

pytestmark = pytest.mark.django_db


def counts():
    return (Payment.objects.count(), FailureEvent.objects.count(), RecoveryAttempt.objects.count(), Customer.objects.count())


def test_a_failure_is_recorded_classified_and_planned(api, org):
    response = api.post("events/payment_failed", report(reference="order-1"))

    assert response.status_code == 201
    body = response.json()
    assert body["duplicate"] is False
    assert body["payment"] == {"reference": "order-1", "status": "recovering", "amount": 4999, "currency": "USD"}
    assert body["classification"]["category"] == "insufficient_funds"
    assert body["classification"]["retryable"] is True
    assert body["classification"]["action"] == "auto_retry"
    assert "insufficient_funds" in body["classification"]["reason"]
    assert body["next_attempt"]["kind"] == "auto_retry"
    assert body["next_attempt"]["channel"] == "psp"
    assert body["next_attempt"]["reason"].startswith("Re-charge 1 of 7: insufficient funds, 1 day after the failure")
    event = FailureEvent.objects.get(pk=body["id"])
    assert event.organization == org
    assert event.payment.customer.email == "ada@example.com"
    assert event.payment.card_last4 == "4242"


def test_repeated_event_id_is_a_duplicate_that_changes_nothing(api):
    first = api.post("events/payment_failed", report(event_id="evt_1", reference="order-1"))
    before = counts()
    again = api.post("events/payment_failed", report(event_id="evt_1", reference="order-1", amount=1))

    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["payment"]["amount"] == 4999
    assert again.json()["next_attempt"] == first.json()["next_attempt"]
    assert counts() == before


def test_event_ids_are_scoped_to_the_organization(api, other_api):
    api.post("events/payment_failed", report(event_id="evt_shared", reference="order-1"))
    theirs = other_api.post("events/payment_failed", report(event_id="evt_shared", reference="order-1"))

    assert theirs.status_code == 201
    assert Payment.objects.count() == 2


def test_second_failure_of_a_reference_adds_an_event_and_replans(api):
    api.post("events/payment_failed", report(reference="order-1"))
    second = api.post(
        "events/payment_failed",
        report(reference="order-1", failure={"code": "expired_card", "decline_code": "expired_card"}),
    )

    assert second.status_code == 201
    payment = Payment.objects.get(reference="order-1")
    assert payment.failure_events.count() == 2
    assert payment.failure_count == 2
    assert payment.category == "expired_card"
    attempts = list(payment.attempts.order_by("sequence"))
    assert [(a.kind, a.status) for a in attempts] == [("auto_retry", "cancelled"), ("notification", "scheduled")]
    assert second.json()["next_attempt"]["kind"] == "notification"


def test_a_later_report_fills_in_customer_facts_without_blanking_known_ones(api):
    api.post("events/payment_failed", report(reference="order-1", customer={"id": "cus_9", "email": "a@example.com"}))
    api.post("events/payment_failed", report(reference="order-1", customer={"id": "cus_9", "phone": "+14155550123"}))

    customer = Customer.objects.get(external_id="cus_9")
    assert (customer.email, customer.phone) == ("a@example.com", "+14155550123")


def test_idempotency_key_replays_the_first_response(api):
    data = report(event_id=None, reference="order-1")
    first = api.post("events/payment_failed", data, **{"Idempotency-Key": "k-replay"})
    before = counts()
    again = api.post("events/payment_failed", data, **{"Idempotency-Key": "k-replay"})

    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert counts() == before


def test_idempotency_key_with_a_different_body_is_a_conflict(api):
    api.post("events/payment_failed", report(reference="order-1"), **{"Idempotency-Key": "k-conflict"})
    before = counts()
    other = api.post("events/payment_failed", report(reference="order-2"), **{"Idempotency-Key": "k-conflict"})

    assert other.status_code == 409
    assert other.json()["error"]["type"] == "idempotency_conflict"
    assert counts() == before


def test_a_request_that_failed_validation_can_be_retried_with_its_key(api):
    bad = api.post("events/payment_failed", report(amount=-1), **{"Idempotency-Key": "k-retry"})
    good = api.post("events/payment_failed", report(reference="order-ok"), **{"Idempotency-Key": "k-retry"})

    assert bad.status_code == 400
    assert good.status_code == 201
    assert IdempotencyRecord.objects.get(key="k-retry").status_code == 201


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_twenty_concurrent_requests_with_one_idempotency_key_record_one_event(api_key):
    key = api_key[1]
    data = report(event_id=None, reference="order-race")

    results = concurrently(20, lambda: Api(key).post("events/payment_failed", data, **{"Idempotency-Key": "k-race"}))

    assert sorted(r.status_code for r in results) == [201] * 20
    assert len({r.json()["id"] for r in results}) == 1
    assert FailureEvent.objects.count() == 1
    assert RecoveryAttempt.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_twenty_concurrent_reports_with_one_event_id_record_one_event(api_key):
    key = api_key[1]
    data = report(event_id="evt_race", reference="order-race")

    results = concurrently(20, lambda: Api(key).post("events/payment_failed", data))

    assert sorted(r.status_code for r in results) == [200] * 19 + [201]
    assert FailureEvent.objects.count() == 1
    assert Payment.objects.get().failure_count == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_concurrent_failures_of_one_reference_leave_one_scheduled_attempt(api_key):
    key = api_key[1]

    results = concurrently(8, lambda: Api(key).post("events/payment_failed", report(reference="order-same")))

    assert sorted(r.status_code for r in results) == [201] * 8
    payment = Payment.objects.get()
    assert payment.failure_count == 8
    assert payment.attempts.filter(status="scheduled").count() == 1


def test_occurred_at_is_kept_and_opens_the_recovery_window(api, org):
    when = timezone.now() - timedelta(days=2)
    api.post("events/payment_failed", report(reference="order-1", occurred_at=when.isoformat()))

    payment = Payment.objects.get()
    assert payment.first_failed_at == when
    assert payment.recovery_ends_at == when + timedelta(days=28)


def test_a_failure_older_than_the_window_is_recorded_as_exhausted(api):
    old = (timezone.now() - timedelta(days=30)).isoformat()
    response = api.post("events/payment_failed", report(reference="order-old", occurred_at=old))

    assert response.status_code == 201
    assert response.json()["payment"]["status"] == "exhausted"
    assert response.json()["next_attempt"] is None


# --- Bad input: 400 with field errors, nothing stored -------------------------------------------------


def nested(fields: dict, path: str):
    value = fields
    for part in path.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"reference": None}, "reference"),
        ({"reference": "  "}, "reference"),
        ({"reference": "x" * 201}, "reference"),
        ({"reference": "two\nlines"}, "reference"),
        ({"amount": None}, "amount"),
        ({"amount": "4999"}, "amount"),
        ({"amount": 49.99}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 10**16}, "amount"),
        ({"currency": None}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "dollars"}, "currency"),
        ({"currency": 840}, "currency"),
        ({"provider": None}, "provider"),
        ({"provider": "paypal"}, "provider"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-11-28T09:30:00"}, "occurred_at"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"failure": None}, "failure"),
        ({"failure": "declined"}, "failure"),
        ({"failure": {}}, "failure.non_field_errors"),
        ({"failure": {"code": 51}}, "failure.code"),
        ({"failure": {"color": "red"}}, "failure.color"),
        ({"customer": {"email": "not-an-email"}}, "customer.email"),
        ({"customer": {"phone": "0415 555 0123"}}, "customer.phone"),
        ({"customer": {"timezone": "Mars/Olympus"}}, "customer.timezone"),
        ({"customer": {"locale": "english please"}}, "customer.locale"),
        ({"customer": []}, "customer"),
        ({"payment_method": {"last4": "42"}}, "payment_method.last4"),
        ({"payment_method": {"exp_month": 13}}, "payment_method.exp_month"),
        ({"payment_method": {"exp_year": "2030"}}, "payment_method.exp_year"),
        ({"metadata": {"k": "v" * 5000}}, "metadata"),
        ({"metadata": {f"k{i}": i for i in range(51)}}, "metadata"),
        ({"metadata": ["a"]}, "metadata"),
        ({"ammount": 5}, "ammount"),
    ],
)
def test_invalid_field_is_a_400_naming_it_and_stores_nothing(api, overrides, field):
    before = counts()
    response = api.post("events/payment_failed", report(**overrides))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert nested(error["fields"], field)
    assert counts() == before


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', ""])
def test_body_that_is_not_a_json_object_is_a_400(api, raw):
    before = counts()
    response = api.post("events/payment_failed", raw=raw)

    assert response.status_code == 400
    assert response.json()["error"]["type"] in {"parse_error", "validation_error"}
    assert counts() == before


def test_wrong_content_type_is_refused(api):
    response = api.client.post(
        "/api/v1/events/payment_failed", "reference=x", content_type="application/x-www-form-urlencoded",
        headers=api.headers,
    )
    assert response.status_code == 415


def test_lowercase_currency_is_accepted_as_iso(api):
    response = api.post("events/payment_failed", report(currency="inr"))
    assert response.status_code == 201
    assert response.json()["payment"]["currency"] == "INR"


def test_ingestion_needs_an_api_key(client):
    response = client.post("/api/v1/events/payment_failed", json.dumps(report()), content_type="application/json")
    assert response.status_code == 401
    assert Payment.objects.count() == 0


# --- Batch ----------------------------------------------------------------------------------------


def test_batch_answers_one_result_per_item_and_invalid_items_do_not_block_valid_ones(api):
    first = report(event_id="evt_a", reference="order-a")
    response = api.post(
        "events/payment_failed/batch",
        {"events": [first, report(amount=-1), first, report(reference="order-b", currency="XYZ"), report(reference="order-c")]},
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 200, 400, 201]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert results[1]["error"]["fields"]["amount"]
    assert results[3]["error"]["fields"]["currency"]
    assert results[2]["duplicate"] is True and results[2]["id"] == results[0]["id"]
    assert set(Payment.objects.values_list("reference", flat=True)) == {"order-a", "order-c"}


def test_batch_item_that_was_sent_before_is_a_duplicate(api):
    api.post("events/payment_failed", report(event_id="evt_a", reference="order-a"))
    response = api.post("events/payment_failed/batch", {"events": [report(event_id="evt_a", reference="order-a")]})

    assert response.json()["results"][0]["status"] == 200
    assert FailureEvent.objects.count() == 1


def test_batch_with_several_failures_of_one_reference_plans_once(api):
    events = [report(reference="order-a"), report(reference="order-a", failure={"decline_code": "expired_card"})]
    response = api.post("events/payment_failed/batch", {"events": events})

    assert [r["status"] for r in response.json()["results"]] == [201, 201]
    payment = Payment.objects.get()
    assert payment.failure_count == 2
    assert payment.attempts.count() == 1


@pytest.mark.parametrize(
    "body", [{}, {"events": []}, {"events": "x"}, {"events": [report()] * 1001}, [report()]],
    ids=["missing", "empty", "not-a-list", "too-many", "bare-list"],
)
def test_batch_envelope_errors_are_400_and_store_nothing(api, body):
    response = api.post("events/payment_failed/batch", body)
    assert response.status_code == 400
    assert Payment.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_concurrent_batches_in_one_process_take_turns_and_all_are_recorded(api_key, monkeypatch):
    # One batch at a time per process (a second beside it would only double the memory), keyed or not.
    import threading

    from recovery import ingestion

    key = api_key[1]
    record, lock = ingestion.record_failures, threading.Lock()
    running, most = [0], [0]

    def counted(**kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return record(**kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(ingestion, "record_failures", counted)
    numbers = iter(range(6))

    def post():
        n = next(numbers)
        events = [report(reference=f"order-{n}-{i}") for i in range(50)]
        headers = {"Idempotency-Key": f"k-{n}"} if n % 2 else {}
        return Api(key).post("events/payment_failed/batch", {"events": events}, **headers)

    results = concurrently(6, post)

    assert [r.status_code for r in results] == [200] * 6
    assert all(item["status"] == 201 for r in results for item in r.json()["results"])
    assert most[0] == 1
    assert Payment.objects.count() == 300
    assert RecoveryAttempt.objects.count() == 300


def test_batch_of_a_thousand_is_accepted(api):
    events = [report(reference=f"order-{i}") for i in range(1000)]
    response = api.post("events/payment_failed/batch", {"events": events})

    assert response.status_code == 200
    assert {r["status"] for r in response.json()["results"]} == {201}
    assert Payment.objects.count() == 1000
    assert RecoveryAttempt.objects.count() == 1000


def test_batch_of_a_thousand_with_the_largest_metadata_fits_the_body_limit(api):
    metadata = {f"key{j:02d}": "v" * 70 for j in range(50)}  # just under the 4 KB per-item limit
    events = [report(reference=f"order-{i}", metadata=metadata) for i in range(1000)]
    response = api.post("events/payment_failed/batch", {"events": events}, **{"Idempotency-Key": "big"})

    assert response.status_code == 200
    assert {r["status"] for r in response.json()["results"]} == {201}


def test_body_over_the_limit_is_a_413_that_says_so(api):
    response = api.post("events/payment_failed/batch", raw='{"events": ["' + "x" * (9 * 1024 * 1024) + '"]}')

    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert "8 MB" in response.json()["error"]["message"]
    assert Payment.objects.count() == 0
