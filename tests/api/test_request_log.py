"""The API request log (Developers → Logs): what each request leaves, and what never gets stored."""

from __future__ import annotations

import json

import pytest

from tests.recovery.conftest import Api, report
from tinko.api.request_log import MASK, mask_body, mask_text
from tinko.models import ApiRequestLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(api_key):
    return Api(api_key[1])


def test_a_request_leaves_method_path_status_latency_key_ids_and_bodies(api, api_key, org):
    body = report(reference="order-1")
    response = api.post("events/payment_failed", body, **{"Idempotency-Key": "idem-1", "X-Request-ID": "req-abc-123"})
    assert response.status_code == 201
    log = ApiRequestLog.objects.get()
    assert (log.organization, log.api_key, log.key_name) == (org, api_key[0], "Test key")
    assert (log.method, log.path, log.status) == ("POST", "/api/v1/events/payment_failed", 201)
    assert (log.request_id, log.idempotency_key) == ("req-abc-123", "idem-1")
    assert log.duration_ms >= 0
    assert json.loads(log.request_body)["reference"] == "order-1"
    assert json.loads(log.response_body)["payment"]["reference"] == "order-1"


def test_errors_are_logged_as_the_client_received_them(api):
    response = api.post("events/payment_failed", raw=b"{not json")
    assert response.status_code == 400
    log = ApiRequestLog.objects.get()
    assert log.status == 400
    assert json.loads(log.response_body) == response.json()
    assert log.request_body == "{not json"


def test_an_unknown_path_is_not_logged_since_no_key_was_checked(api):
    # Django answers it before any API view authenticates the key: no organization to file it under.
    assert api.get("no/such/thing").status_code == 404
    assert not ApiRequestLog.objects.exists()


def test_requests_without_a_valid_key_are_not_logged(client, org):
    client.post("/api/v1/events/payment_failed", "{}", content_type="application/json",
                headers={"Authorization": "Bearer tk_aaaaaaaa_wrong"})
    client.get("/api/v1/payments")
    assert not ApiRequestLog.objects.exists()


def test_each_organization_sees_only_its_own_requests(api, other_org, outsider):
    from tinko import services

    _key, plaintext = services.create_api_key(organization=other_org, name="Globex key", created_by=outsider)
    Api(plaintext).get("payments")
    api.get("payments")
    assert sorted(ApiRequestLog.objects.values_list("organization__slug", "key_name")) == [
        ("acme", "Test key"), (other_org.slug, "Globex key")]


def test_logging_can_be_turned_off(api, settings):
    settings.TINKO_API_LOG_ENABLED = False
    api.get("payments")
    assert not ApiRequestLog.objects.exists()


def test_a_new_pay_links_token_never_reaches_the_log(api):
    api.post("events/payment_failed", report(reference="link-1"))
    response = api.post("payments/link-1/recovery_link")
    assert response.status_code in (200, 201), response.content
    url = response.json()["url"]
    token = url.rstrip("/").rsplit("/", 1)[-1]
    log = ApiRequestLog.objects.get(path="/api/v1/payments/link-1/recovery_link")
    assert token not in log.response_body
    assert f"/pay/{MASK}" in log.response_body


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("card 4242 4242 4242 4242 declined", f"{MASK} 4242", "4242 4242 4242 4242"),
        ("pan=5555-5555-5555-4444", f"{MASK} 4444", "5555-5555-5555-4444"),
        ("key tk_abcd1234_SeCrEtPaRt-xyz", f"tk_abcd1234_{MASK}", "SeCrEtPaRt"),
        ("sk_test_51Habcdefghijkl and whsec_abcdef123", f"sk_test_{MASK}", "51Habcdefghijkl"),
        ("https://tinko.example/pay/AbCdEfGhIjKlMnOpQrStUv/", f"/pay/{MASK}/", "AbCdEfGhIjKlMnOpQrStUv"),
        ("order 1234567890123 ships", "1234567890123", ""),  # not Luhn-valid: an order number, kept
    ],
)
def test_secrets_in_text_are_masked(text, kept, gone):
    masked = mask_text(text)
    assert kept in masked
    if gone:
        assert gone not in masked


def test_secret_fields_are_masked_and_the_rest_kept():
    body = json.dumps({
        "customer": {"email": "ada@example.com", "name": "Ada"},
        "payment_method": {"number": "4242424242424242", "cvc": "123", "last4": "4242"},
        "password": "hunter2", "api_key": "anything", "client_secret": "pi_1_secret_2", "access_token": "t",
        "idempotency_key": "idem-1", "reference": "order-1",
    }).encode()
    stored = json.loads(mask_body(body))
    assert stored["customer"] == {"email": "ada@example.com", "name": "Ada"}
    assert stored["payment_method"] == {"number": MASK, "cvc": MASK, "last4": "4242"}
    assert [stored[k] for k in ("password", "api_key", "client_secret", "access_token")] == [MASK] * 4
    assert (stored["idempotency_key"], stored["reference"]) == ("idem-1", "order-1")


def test_a_large_json_body_is_cut_and_masked_in_the_part_kept():
    events = [{"reference": f"order-{i}", "customer": {"email": f"c{i}@example.com"},
               "payment_method": {"number": "4242 4242 4242 4242", "cvc": 123}, "api_key": "anything",
               "note": "paid by sk_live_abcdefghijklmnop"} for i in range(1000)]
    raw = json.dumps({"events": events}).encode()
    stored = mask_body(raw)
    assert len(stored) < 8100 and stored.endswith("characters not kept]")
    assert "order-0" in stored and "c0@example.com" in stored
    for secret in ("4242 4242 4242 4242", '"cvc": 123', '"anything"', "sk_live_abcdefghijklmnop"):
        assert secret not in stored
    # A secret whose value the cut splits is masked too.
    cut = json.dumps({"padding": "x" * (8000 - 30), "password": "hunter2-and-more" * 2000}).encode()
    assert "hunter2" not in mask_body(cut)


def test_long_bodies_are_cut_and_say_so():
    stored = mask_body(b"x" * 20000)
    assert len(stored) < 8100 and stored.endswith("characters not kept]")


def test_a_body_with_nothing_to_mask_is_stored_as_sent():
    raw = b'{"reference": "order-1",  "amount": 4999, "customer": {"email": "ada@example.com"}}'
    assert mask_body(raw) == raw.decode()


def test_a_card_number_hidden_by_a_json_escape_is_still_masked():
    # The text holds no card number a search could find; the decoded value does.
    raw = b'{"note": "card 4242\\u00204242 4242 4242"}'
    stored = json.loads(mask_body(raw))
    assert stored == {"note": f"card {MASK} 4242"}


def test_a_secret_named_field_with_an_unremarkable_value_is_masked():
    assert json.loads(mask_body(b'{"reference":"order-1","client_secret":"plain"}')) == {
        "reference": "order-1", "client_secret": MASK}


def test_the_log_insert_is_prepared_on_the_connection(api):
    from django.db import connection

    api.get("payments")
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("tinko_apirequestlog" in statement for statement in prepared)
    assert ApiRequestLog.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_request_is_still_logged_when_the_database_lost_the_prepared_statement(api, monkeypatch):
    # What a transaction-mode pooler without prepared statements does: the next server connection
    # does not know the statement the client prepared on another.
    from django.db import connection

    from tinko.api import request_log

    monkeypatch.setattr(request_log, "_prepare", True)
    api.get("payments")
    with connection.cursor() as cursor:
        cursor.execute("DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$")
    api.get("payments")
    api.get("payments")
    assert ApiRequestLog.objects.count() == 3
    assert request_log._prepare is False
