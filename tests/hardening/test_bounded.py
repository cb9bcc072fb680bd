"""Bounded work for every caller: webhook stubs and body limits, per-address rates, the template sandbox."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from django.db import connection
from django.urls import reverse

from notifications import rendering
from notifications.models import MessageTemplate, Notification
from payments.models import WebhookMessage
from recovery import runner
from tests.notifications.conftest import due_message, ingest
from tests.payments.conftest import post_stripe, stripe_account  # noqa: F401  (fixture)
from tests.recovery.conftest import api  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

PREVIEW = reverse("console:template_preview", args=["email", "first_notice", "en"])
BOMB = "{% for a in pay_url %}{% for b in pay_url|ljust:'200' %}{% for c in pay_url %}x{% endfor %}{% endfor %}{% endfor %}"


def _stored_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(SUM(pg_column_size(body)), 0) FROM {WebhookMessage._meta.db_table}")
        return cursor.fetchone()[0]


def test_big_posts_to_unknown_webhook_urls_store_only_a_stub(client):
    body = b'{"id": "evt_x", "pad": "' + b"A" * (7 * 1024 * 1024) + b'"}'
    for i in range(10):
        response = client.post(f"/webhooks/stripe/nope{i}/", data=body, content_type="application/json")
        assert response.status_code == 404
        assert response.json() == {"error": "No active account has this webhook URL."}

    messages = list(WebhookMessage.objects.all())
    assert len(messages) == 10
    assert all(len(m.body) <= 2048 and m.body_truncated and m.body_size == len(body) for m in messages)
    assert _stored_bytes() < 10 * 4096


def test_a_stub_keeps_the_size_and_hash_of_a_small_unmatched_request(client, settings):
    settings.TINKO_WEBHOOK_STUB_BYTES = 100
    body = json.dumps({"id": "evt_1", "pad": "B" * 5000}).encode()

    client.post("/webhooks/razorpay/unknown-account/", data=body, content_type="application/json")

    message = WebhookMessage.objects.get()
    assert message.body == body[:100].decode()
    assert message.body_size == len(body) and message.body_truncated
    assert message.body_sha256 == hashlib.sha256(body).hexdigest()


def test_a_paused_accounts_webhook_keeps_only_a_stub(client, stripe_account, settings):
    settings.TINKO_WEBHOOK_STUB_BYTES = 64
    stripe_account.is_active = False
    stripe_account.save()

    response = post_stripe(client, stripe_account, {"id": "evt_1", "type": "x", "data": {"object": {"pad": "C" * 500}}})

    assert response.status_code == 404
    assert len(WebhookMessage.objects.get().body) == 64


def test_a_body_over_the_limit_for_an_active_account_is_413_and_a_stub(client, stripe_account, settings):
    settings.TINKO_WEBHOOK_MAX_BODY = 2048
    event = {"id": "evt_big", "type": "payment_intent.payment_failed", "data": {"object": {"pad": "D" * 5000}}}

    response = post_stripe(client, stripe_account, event)

    assert response.status_code == 413
    message = WebhookMessage.objects.get()
    assert message.status == "rejected" and message.body_truncated and len(message.body) <= 2048


def test_webhooks_are_rate_limited_per_address(client, settings):
    settings.TINKO_WEBHOOK_RATE = "3/hour"
    answers = [client.post("/webhooks/stripe/nope/", data=b"{}", content_type="application/json") for _ in range(4)]

    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert answers[-1].json() == {"error": "Too many requests from this address."}
    assert int(answers[-1]["Retry-After"]) >= 1
    assert WebhookMessage.objects.count() == 3
    other = client.post("/webhooks/stripe/nope/", data=b"{}", content_type="application/json", REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 404


def test_twilio_and_esp_webhooks_share_the_per_address_rate(client, settings):
    settings.TINKO_WEBHOOK_RATE = "2/hour"
    client.post("/webhooks/messages/twilio/status/", {"MessageSid": "SM1"})
    client.post("/webhooks/messages/anymail/postmark/tracking/", "{}", content_type="application/json")
    assert client.post("/webhooks/messages/twilio/status/", {"MessageSid": "SM1"}).status_code == 429


def test_template_preview_is_rate_limited_per_user(viewer_client, settings):
    settings.TINKO_PREVIEW_RATE = "2/hour"
    data = {"subject": "Hi", "text": "Hi {{ customer_name }}", "html": "", "button_label": ""}
    codes = [viewer_client.post(PREVIEW, data).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_a_loop_bomb_in_the_preview_stops_fast_with_a_form_error(viewer_client):
    started = time.monotonic()
    response = viewer_client.post(PREVIEW, {"subject": "Hi", "text": BOMB, "html": "", "button_label": ""})
    elapsed = time.monotonic() - started

    assert elapsed < 3
    assert len(response.content) < 50_000
    page = response.content.decode()
    assert "The template&#x27;s loops run more than 10,000 times." in page


@pytest.mark.parametrize("source, message", [
    ("{{ pay_url|ljust:'1000' }}", "width 1000 is over the limit"),
    ("{{ pay_url|stringformat:'0999999d' }}", "stringformat filter's width"),
    ("x" * 20_001, "the limit is 20,000"),
    ("{% for a in pay_url %}{% for b in pay_url %}{% for c in pay_url %}{% endfor %}{% endfor %}{% endfor %}",
     "more than 10,000 times"),
    ("{% for a in 'abcdefghij' %}{% for b in 'abcdefghij' %}{{ pay_url|ljust:'500' }}{% endfor %}{% endfor %}",
     "more than 100,000 characters"),
])
def test_the_sandbox_limits_are_form_errors_in_the_editor(owner_client, source, message):
    url = reverse("console:template_edit", args=["sms", "first_notice", "en"])
    response = owner_client.post(url, {"text": source, "action": "save"})

    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not MessageTemplate.objects.exists()


def test_render_time_is_bounded(monkeypatch):
    monkeypatch.setattr(rendering, "MAX_RENDER_SECONDS", 0.0)
    with pytest.raises(rendering.TemplateLimit, match="longer than"):
        rendering.render_source("{% for a in pay_url %}x{% endfor %}", rendering.placeholder_context())


def test_a_worker_sends_the_shipped_copy_when_a_saved_template_breaks_the_limits(api, org):
    # Saved before the limits existed (or written to the database directly): the worker must not spin on it.
    MessageTemplate.objects.create(organization=org, channel="email", kind="first_notice", locale="en",
                                   subject="Hi", text=BOMB, html="")
    payment = ingest(api)
    started = time.monotonic()
    runner.run_attempt(due_message(payment).pk)

    assert time.monotonic() - started < 5
    notification = Notification.objects.get(payment=payment)
    from tinko import crypto

    text = crypto.decrypt(notification.text_encrypted)
    assert "xxxxxxxxxx" not in text
    assert len(text) < 10_000
