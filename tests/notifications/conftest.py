"""Helpers for notification tests: failed payments with a message due, a recorded Twilio, a local SMTP server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from recovery import dispatch
from recovery.models import AttemptStatus, Payment, RecoveryAttempt, RetryPolicy
from tests.recovery.conftest import api, other_api, report  # noqa: F401  (fixtures)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TWILIO_SID = "AC00000000000000000000000000000000"
TWILIO_TOKEN = "12345678901234567890123456789012"


def ingest(api, **overrides) -> Payment:
    overrides.setdefault("failure", {"decline_code": "expired_card"})
    response = api.post("events/payment_failed", report(**overrides))
    assert response.status_code == 201, response.content
    return Payment.objects.select_related("customer").get(reference=response.json()["payment"]["reference"])


def due_message(payment, *, quiet_hours=False) -> RecoveryAttempt:
    """Make the payment's scheduled message due now and claim it, as a scheduler tick would."""
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    assert attempt.kind == "notification", attempt
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    if not quiet_hours:
        # Tests run at any hour: quiet hours are switched off unless a test is about them.
        RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=None, quiet_hours_end=None)
    assert dispatch.claim_due_attempts() >= 1
    attempt.refresh_from_db()
    return attempt


class RecordedTwilio:
    """A twilio HttpClient answering from tests/fixtures/twilio/ and keeping every request it was given."""

    def __init__(self):
        from twilio.http import HttpClient

        self.requests: list[dict] = []
        self.answers: list[tuple[int, str]] = []
        outer = self

        class Client(HttpClient):
            def request(self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None,
                        allow_redirects=False):
                from twilio.http.response import Response

                outer.requests.append({"method": method, "uri": uri, "data": dict(data or {}), "auth": auth})
                status, body = outer.answers.pop(0) if outer.answers else (201, outer.fixture("message_created.json"))
                return Response(status, body)

        import logging

        self.client = Client(logging.getLogger("twilio.http_client"), False)

    @staticmethod
    def fixture(name: str) -> str:
        return (FIXTURES / "twilio" / name).read_text()

    def answer(self, status: int, name: str):
        self.answers.append((status, self.fixture(name)))


@pytest.fixture
def twilio(settings, monkeypatch):
    from notifications import channels

    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_SMS_FROM = "+15005550006"
    settings.TWILIO_WHATSAPP_FROM = "+15005550007"
    recorded = RecordedTwilio()
    monkeypatch.setattr(channels, "twilio_http_client", recorded.client)
    # A merchant created before Twilio was configured got e-mail only (recovery.services.default_policy_channels);
    # these tests are about SMS and WhatsApp, so the policies use every channel, as the merchant would set them.
    RetryPolicy.objects.update(channels=["email", "sms", "whatsapp"])
    return recorded


def twilio_signature(url: str, params: dict) -> str:
    from twilio.request_validator import RequestValidator

    return RequestValidator(TWILIO_TOKEN).compute_signature(url, params)


def postmark_payload(name: str, public_id: str) -> dict:
    return json.loads((FIXTURES / "anymail" / name).read_text().replace("PUBLIC_ID", public_id))


class Received(list):
    """Messages the SMTP server got (bytes), the client address of each (``peers``) and the number of sessions."""

    def __init__(self):
        super().__init__()
        self.peers: list = []
        self.sessions = 0  # EHLOs: one per SMTP session


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free port; yields (host, port, received messages)."""
    from aiosmtpd.controller import Controller

    received = Received()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            received.peers.append(session.peer)
            return "250 Message accepted for delivery"

        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            received.sessions += 1
            session.host_name = hostname
            return responses

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, received
    finally:
        controller.stop()
