"""Malformed input of any kind is a 400 with a reason, never a 500: named cases, then generated bodies per endpoint.

Every client here runs with ``raise_request_exception=False``: a server error
must show up as the 500 a caller would get, not as an exception in the test.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from payments.models import WebhookMessage
from tests.payments.conftest import post_stripe, stripe_account  # noqa: F401  (fixture)
from tests.recovery.conftest import report

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
SECRET = "hooks:s3cret-value"


def _api(api_key) -> tuple[Client, dict]:
    return Client(raise_request_exception=False), {"Authorization": f"Bearer {api_key[1]}"}


def _assert_reasoned_400(response):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    error = body["error"]
    reason = error["message"] if isinstance(error, dict) else error
    assert reason and "Traceback" not in reason


@pytest.mark.parametrize("raw, reason", [
    (DEEP, "nested more than 32 levels"),
    (json.dumps(report(reference="\ud800")), "lone surrogate"),
    (json.dumps(report(reference="a\u0000b")), "NUL character"),
    (json.dumps(report(metadata={"k": "\ud83d"})), "lone surrogate"),
    (b"\xff\xfe{\x00", "not UTF-8"),
])
@pytest.mark.parametrize("path", ["events/payment_failed", "events/payment_failed/batch"])
def test_bad_json_to_the_ingestion_api_is_a_400_with_the_reason(api_key, path, raw, reason):
    client, headers = _api(api_key)
    if path.endswith("batch") and isinstance(raw, str) and raw.startswith("{"):
        raw = '{"events": [' + raw + "]}"
    response = client.post(f"/api/v1/{path}", raw, content_type="application/json", headers=headers)

    _assert_reasoned_400(response)
    assert response.json()["error"]["type"] == "parse_error"
    assert reason in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/payments/a%00b", "/api/v1/payments?reference=x%00", "/pay/abc%00def/",
                                  "/webhooks/stripe/a%00/"])
def test_a_nul_in_the_address_is_a_400(api_key, path):
    client, headers = _api(api_key)
    response = client.get(path, headers=headers) if "webhooks" not in path else client.post(path, b"{}", content_type="application/json")
    assert response.status_code == 400
    assert "NUL" in json.dumps(response.json())


def test_a_nul_byte_in_a_psp_webhook_body_is_refused_and_recorded(stripe_account):
    client = Client(raise_request_exception=False)
    for path in (stripe_account.webhook_path, "/webhooks/stripe/unknown/"):
        response = client.post(path, b'{"id": "evt\x00", "type": "x"}', content_type="application/json",
                               HTTP_STRIPE_SIGNATURE="t=1,v1=00")
        assert response.status_code in (400, 404)
    assert WebhookMessage.objects.count() == 2
    assert all("\x00" not in m.body for m in WebhookMessage.objects.all())


def test_a_signed_stripe_event_nested_too_deeply_is_a_400(stripe_account):
    client = Client(raise_request_exception=False)
    body = ('{"id": "evt_1", "type": "charge.failed", "data": {"object": ' + DEEP + "}}").encode()
    response = post_stripe(client, stripe_account, None, body=body)
    assert response.status_code == 400
    assert "nested" in response.json()["error"]


@pytest.mark.parametrize("body", [DEEP.encode(), b"\xff\xfe\x00garbage", b'{"RecordType": ' * 50, b"[]", b'"x"'])
def test_unreadable_esp_tracking_bodies_are_a_400(settings, body):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    client = Client(raise_request_exception=False)
    auth = base64.b64encode(SECRET.encode()).decode()
    response = client.post("/webhooks/messages/anymail/postmark/tracking/", body, content_type="application/json",
                           headers={"Authorization": f"Basic {auth}"})
    assert response.status_code in (200, 400), response.content[:200]
    if response.status_code == 400:
        assert response.json()["error"]


# --- Generated bodies --------------------------------------------------------------------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40))
_json = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                     max_leaves=20)
_report_like = st.fixed_dictionaries({}, optional={
    "event_id": st.text(max_size=30), "reference": st.text(max_size=30), "amount": _leaf, "currency": st.text(max_size=5),
    "provider": st.sampled_from(["sandbox", "stripe", "razorpay", "other", "x"]), "failure": _json, "customer": _json,
    "payment_method": _json, "metadata": _json, "occurred_at": st.text(max_size=30),
})
BODIES = st.one_of(
    st.binary(max_size=300),
    _json.map(lambda v: json.dumps(v).encode()),
    _report_like.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 400).map(lambda n: ("[" * n + "]" * n).encode()),
)
EXAMPLES = hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])


def _never_a_server_error(response):
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400 and response.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        assert body.get("error"), body


@pytest.mark.parametrize("path", ["events/payment_failed", "events/payment_failed/batch", "retry_policies",
                                  "payments/order-1/paid", "payments/order-1/recovery_link"])
@EXAMPLES
@given(body=BODIES)
def test_generated_bodies_to_api_posts_never_get_a_server_error(api_key, path, body):
    client, headers = _api(api_key)
    _never_a_server_error(client.post(f"/api/v1/{path}", body, content_type="application/json", headers=headers))


@EXAMPLES
@given(body=BODIES)
def test_generated_bodies_to_a_retry_policy_patch_never_get_a_server_error(api_key, body):
    client, headers = _api(api_key)
    policy = client.get("/api/v1/retry_policies", headers=headers).json()[0]["id"]
    _never_a_server_error(client.patch(f"/api/v1/retry_policies/{policy}", body, content_type="application/json",
                                       headers=headers))


@EXAMPLES
@given(body=BODIES, signed=st.booleans())
def test_generated_bodies_to_psp_webhooks_never_get_a_server_error(stripe_account, body, signed):
    client = Client(raise_request_exception=False)
    response = post_stripe(client, stripe_account, None, body=body, signature=None if signed else "t=1,v1=00")
    _never_a_server_error(response)
    _never_a_server_error(client.post("/webhooks/razorpay/unknown/", body, content_type="application/json"))


@EXAMPLES
@given(body=BODIES, content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                                   "multipart/form-data; boundary=x", "text/plain"]))
def test_generated_bodies_to_message_webhooks_never_get_a_server_error(settings, body, content_type):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    client = Client(raise_request_exception=False)
    auth = {"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()}
    for esp in ("postmark", "mailgun", "sendgrid", "brevo", "amazon_ses", "resend", "mailjet", "sparkpost"):
        _never_a_server_error(client.post(f"/webhooks/messages/anymail/{esp}/tracking/", body, content_type=content_type,
                                          headers=auth))
    for path in ("/webhooks/messages/twilio/status/", "/webhooks/messages/twilio/inbound/"):
        _never_a_server_error(client.post(path, body, content_type=content_type))


@EXAMPLES
@given(token=st.text(min_size=1, max_size=80).filter(lambda t: "/" not in t and "\x00" not in t))
def test_generated_tokens_on_public_pages_never_get_a_server_error(token):
    from urllib.parse import quote

    client = Client(raise_request_exception=False)
    for path in (f"/pay/{quote(token, safe='')}/", f"/m/unsubscribe/{quote(token, safe='')}/",
                 f"/invitations/{quote(token, safe='')}/"):
        assert client.get(path).status_code < 500
    assert client.post(f"/m/unsubscribe/{quote(token, safe='')}/").status_code < 500
