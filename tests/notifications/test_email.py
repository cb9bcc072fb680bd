"""E-mail end to end: rendered, sent through a real SMTP server, unsubscribed with one click."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from notifications.models import Notification, Suppression
from recovery import runner
from recovery.models import RecoveryLink
from tests.notifications.conftest import due_message, ingest
from tinko.models import hash_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp_backend(settings, smtp_server):
    host, port, received = smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = host, port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return received


def test_recovery_email_makes_a_real_smtp_round_trip(api, org, smtp_backend, django_capture_on_commit_callbacks, run_jobs):
    org.display_name, org.accent_color, org.support_email = "Acme Coffee", "#123456", "help@acme.test"
    org.save()
    payment = ingest(api, customer={"id": "c1", "email": "ada@example.com", "name": "Ada Lovelace", "timezone": "UTC"})
    attempt = due_message(payment)

    with django_capture_on_commit_callbacks(execute=True):
        assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SENT
    run_jobs()

    (raw,) = smtp_backend
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Acme Coffee <no-reply@tinko.localhost>"
    assert message["Subject"] == "Your payment to Acme Coffee did not go through"
    unsubscribe = message["List-Unsubscribe"].strip()
    assert re.fullmatch(r"<http://testserver/m/unsubscribe/[^/>]+/>", unsubscribe)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hi Ada," in text and "$49.99" in text and "update your card" in text
    token = re.search(r"http://testserver/pay/([\w-]+)/", text).group(1)
    assert RecoveryLink.objects.get(token_hash=hash_token(token)).payment == payment
    # The HTML part: the same link behind a button in the brand colour, CSS inlined (no <style> left).
    assert f'href="http://testserver/pay/{token}/"' in html
    assert "background-color: #123456" in html
    assert "Update card and pay" in html
    assert "<style" not in html
    notification = Notification.objects.get(payment=payment)
    assert notification.status == "sent"
    assert notification.provider_message_id == message["Message-ID"].strip().strip("<>")

    # One click from the mail client (RFC 8058) unsubscribes without a CSRF token or a session.
    url = unsubscribe.strip("<>").removeprefix("http://testserver")
    response = api.client.post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    suppression = Suppression.objects.get(organization=org, channel="email", address="ada@example.com")
    assert suppression.reason == "unsubscribed"
    payment.customer.refresh_from_db()
    assert "email" in payment.customer.opted_out_channels


def test_unsubscribe_page_asks_before_acting_and_rejects_a_forged_link(api, org, settings):
    payment = ingest(api)
    runner.run_attempt(due_message(payment).pk)
    notification = Notification.objects.get(payment=payment)
    from notifications.rules import unsubscribe_url

    path = unsubscribe_url(notification).removeprefix(settings.SITE_URL)
    assert api.client.get(path).status_code == 200
    assert not Suppression.objects.exists()  # a link scanner's GET changes nothing

    forged = path.replace(notification.public_id, "someone-else")
    assert api.client.post(forged).status_code == 404
    assert not Suppression.objects.exists()


def test_smtp_outage_keeps_the_message_queued_for_a_retry(api, settings, django_capture_on_commit_callbacks):
    from notifications import channels, delivery

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    payment = ingest(api)
    runner.run_attempt(due_message(payment).pk)
    notification = Notification.objects.get(payment=payment)

    delivery.deliver(notification.pk)  # the outcome is on the row: no exception, no Dramatiq retry
    notification.refresh_from_db()
    assert notification.status == "queued"
    assert notification.attempts == 1
    assert "ConnectionRefused" in notification.error
    assert notification.next_attempt_at > notification.created_at and notification.sending_until is None


def test_worker_reuses_its_smtp_session_and_reconnects_when_the_server_drops_it(api, smtp_backend, settings):
    from notifications import channels, delivery

    customers = [{"id": f"c{i}", "email": f"c{i}@example.com", "timezone": "UTC"} for i in range(3)]
    ids = []
    for customer in customers:
        payment = ingest(api, customer=customer)
        runner.run_attempt(due_message(payment).pk)
        ids.append(Notification.objects.get(payment=payment).pk)
    channels.drop_mail_connection()

    delivery.deliver(ids[0])
    delivery.deliver(ids[1])
    assert len(smtp_backend) == 2
    assert smtp_backend.sessions == 1  # one session for both

    import socket

    channels._local.connection.connection.sock.shutdown(socket.SHUT_RDWR)  # the session broke while idle
    delivery.deliver(ids[2])
    assert len(smtp_backend) == 3
    assert smtp_backend.sessions == 2
    assert Notification.objects.filter(pk__in=ids, status="sent").count() == 3
    channels.drop_mail_connection()
