"""Webhooks to merchants: Standard Webhooks signatures, the retry schedule, disabling, SSRF guard, engine events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from notifications import webhooks
from notifications.models import WebhookDelivery, WebhookMessage
from recovery import runner
from tests.notifications.conftest import due_message, ingest
from tests.recovery.conftest import report
from tinko.models import OutboundEmail

pytestmark = pytest.mark.django_db


def verify_standard_webhook(secret: str, headers: dict, body: bytes, *, tolerance=300) -> dict:
    """An independent reading of the Standard Webhooks spec: raise on a bad signature, return the payload."""
    msg_id, timestamp, signatures = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    assert abs(time.time() - int(timestamp)) <= tolerance, "timestamp outside tolerance"
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body,
                                         hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(body)
    raise AssertionError("no valid v1 signature")


class Receiver:
    """A local HTTP endpoint answering with ``status`` and keeping what it got."""

    def __init__(self):
        self.status = 204
        self.received: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/tinko"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver is on loopback
    r = Receiver()
    yield r
    r.close()


def test_engine_event_is_delivered_signed_per_standard_webhooks(api, org, owner, receiver, django_capture_on_commit_callbacks, run_jobs):
    endpoint, secret = webhooks.create_endpoint(organization=org, url=receiver.url, events=["payment.recovery_started"], user=owner)
    assert secret.startswith("whsec_") and secret not in endpoint.secret_encrypted

    with django_capture_on_commit_callbacks(execute=True):
        payment = ingest(api)
    run_jobs()

    (headers, body) = receiver.received[0]
    payload = verify_standard_webhook(secret, headers, body)
    assert payload["type"] == "payment.recovery_started"
    assert payload["data"]["payment"]["reference"] == payment.reference
    assert headers["webhook-id"] == WebhookMessage.objects.get().msg_id
    assert WebhookDelivery.objects.get().status == "succeeded"
    with pytest.raises(AssertionError):
        verify_standard_webhook("whsec_" + base64.b64encode(b"x" * 32).decode(), headers, body)


def test_failing_endpoint_is_retried_on_schedule_then_disabled_and_owners_told(org, owner, receiver):
    receiver.status = 500
    endpoint, _ = webhooks.create_endpoint(organization=org, url=receiver.url, events=[], user=owner)
    (message,) = webhooks.emit_many(organization_id=org.pk, events=[("payment.exhausted", {"payment": {"reference": "r1"}}, None)])
    delivery = WebhookDelivery.objects.get(message=message)

    now = timezone.now()
    gaps = []
    for _ in range(8):
        delivery = webhooks.deliver(delivery.pk, now=now)
        if delivery.next_attempt_at:
            gaps.append(delivery.next_attempt_at - now)
            # An early duplicate (a re-enqueue) must not send before its time.
            webhooks.deliver(delivery.pk, now=now + timedelta(seconds=2))
            now = delivery.next_attempt_at

    assert gaps == [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10)]
    assert len(receiver.received) == 8
    assert delivery.status == "failed" and delivery.attempt_count == 8
    assert [entry["status_code"] for entry in delivery.log] == [500] * 8
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "failed 8 times" in endpoint.disabled_reason
    mail = OutboundEmail.objects.get()
    assert mail.to == ["owner@acme.test"]
    assert "disabled a webhook endpoint" in mail.subject
    # Nothing more is recorded for a disabled endpoint.
    assert webhooks.emit(organization_id=org.pk, event_type="payment.exhausted", data={}) is None


def test_endpoint_recovering_before_the_end_succeeds(org, owner, receiver):
    receiver.status = 503
    webhooks.create_endpoint(organization=org, url=receiver.url, events=[], user=owner)
    (message,) = webhooks.emit_many(organization_id=org.pk, events=[("payment.recovered", {}, None)])
    delivery = WebhookDelivery.objects.get(message=message)
    delivery = webhooks.deliver(delivery.pk)
    receiver.status = 200
    delivery = webhooks.deliver(delivery.pk, now=delivery.next_attempt_at)
    assert delivery.status == "succeeded" and delivery.attempt_count == 2


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hooks", "https://10.1.2.3/hooks", "https://192.168.0.10/", "https://169.254.169.254/latest/",
    "https://[::1]/hooks", "https://localhost/hooks", "http://93.184.215.14/hooks", "ftp://93.184.215.14/",
    "https://user:pw@93.184.215.14/",
])
def test_private_loopback_and_plain_http_urls_are_refused_in_production(url):
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.check_url(url)


def test_public_https_ip_is_accepted_in_production():
    webhooks.check_url("https://93.184.215.14/hooks")


def test_delivery_rechecks_the_address_before_sending(org, owner, receiver, settings, monkeypatch):
    """An https URL whose name now resolves to the receiver's private address is refused when connecting.

    The URL passes every rule that needs no lookup (https, a public-looking name), so only
    the check of the resolved address can stop the delivery; without it, the socket connects.
    """
    port = receiver.server.server_port
    webhooks.create_endpoint(organization=org, url=f"https://hooks.example.com:{port}/hooks/tinko", events=[], user=owner)
    (message,) = webhooks.emit_many(organization_id=org.pk, events=[("payment.recovered", {}, None)])
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = False
    looked_up, connected = [], []
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda host, *a, **k: looked_up.append(host) or [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))])
    connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: connected.append(address) or connect(sock, address))

    delivery = webhooks.deliver(WebhookDelivery.objects.get(message=message).pk)

    assert looked_up == ["hooks.example.com"]
    assert delivery.last_error == "The URL points at a private or local address."
    assert ("127.0.0.1", port) not in connected
    assert receiver.received == []


def test_batch_ingestion_emits_in_bulk_without_a_query_per_payment(api, org, owner, receiver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    webhooks.create_endpoint(organization=org, url=receiver.url, events=["payment.recovery_started"], user=owner)
    api.post("events/payment_failed/batch", {"events": [report()]})  # the customer exists from here on
    counts = []
    for size in (2, 20):
        with CaptureQueriesContext(connection) as queries:
            response = api.post("events/payment_failed/batch", {"events": [report() for _ in range(size)]})
        assert response.status_code in (200, 201, 207), response.content
        counts.append(sum("notifications_" in q["sql"] for q in queries.captured_queries))
    # Messages and deliveries inserted once each, whatever the batch size; the endpoints were read by the
    # first request and come from the process's copy while the configuration is unchanged (tinko/orgconfig.py).
    assert counts == [2, 2]
    assert WebhookMessage.objects.filter(event_type="payment.recovery_started").count() == 23


def test_recharge_outcomes_and_recovery_are_emitted(api, org, owner, receiver):
    webhooks.create_endpoint(organization=org, url=receiver.url, events=[], user=owner)
    payment = ingest(api, failure={"decline_code": "insufficient_funds"},
                     payment_method={"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030})
    from recovery import dispatch
    from recovery.models import RecoveryAttempt

    RecoveryAttempt.objects.filter(payment=payment).update(scheduled_for=timezone.now())
    dispatch.claim_due_attempts()
    assert runner.run_attempt(payment.attempts.get().pk) == runner.RunOutcome.SUCCEEDED

    types = list(WebhookMessage.objects.order_by("pk").values_list("event_type", flat=True))
    assert types == ["payment.recovery_started", "attempt.succeeded", "payment.recovered"]
    recovered = WebhookMessage.objects.get(event_type="payment.recovered").payload["data"]["payment"]
    assert recovered["status"] == "recovered" and recovered["recovered_amount"] == 4999


def test_notification_delivery_is_emitted(api, org, owner, receiver, twilio, client):
    from notifications import delivery
    from notifications.models import Notification
    from tests.notifications.conftest import twilio_signature

    webhooks.create_endpoint(organization=org, url=receiver.url, events=["notification.delivered"], user=owner)
    payment = ingest(api, customer={"id": "c1", "phone": "+14155550123", "timezone": "UTC"})
    runner.run_attempt(due_message(payment).pk)
    notification = Notification.objects.get(payment=payment)
    delivery.deliver(notification.pk)
    notification.refresh_from_db()
    params = {"MessageSid": notification.provider_message_id, "MessageStatus": "delivered"}
    url = "http://testserver/webhooks/messages/twilio/status/"
    client.post(url, params, headers={"X-Twilio-Signature": twilio_signature(url, params)})

    message = WebhookMessage.objects.get(event_type="notification.delivered")
    assert message.payload["data"]["notification"]["id"] == notification.public_id
    assert message.payload["data"]["payment"]["reference"] == payment.reference
