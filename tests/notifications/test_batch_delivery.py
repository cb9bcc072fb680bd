"""Messages stored by one recovery job leave together: one delivery job, one transaction, one mail session."""

from __future__ import annotations

import email
import email.policy

import pytest

from notifications import channels, services
from notifications.models import MessagingSettings, Notification
from recovery import tasks as recovery_tasks
from tests.notifications.conftest import Received, due_message, ingest

pytestmark = pytest.mark.django_db

REFUSED = "refused@example.com"


@pytest.fixture
def smtp(settings):
    """A real SMTP server (aiosmtpd) that refuses one recipient (550) and counts sessions; yields what it received."""
    import socket

    from aiosmtpd.controller import Controller

    received = Received()
    refused = {REFUSED}

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            received.sessions += 1
            session.host_name = hostname
            return responses

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address in refused:
                return "550 5.1.1 Mailbox unavailable"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            return "250 Message accepted for delivery"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    channels.drop_mail_connection()
    received.refused = refused
    try:
        yield received
    finally:
        channels.drop_mail_connection()
        controller.stop()


def _due(api, addresses):
    attempts = []
    for i, address in enumerate(addresses):
        payment = ingest(api, customer={"id": f"c{i}", "email": address, "name": f"Customer {i}", "timezone": "UTC"})
        attempts.append(due_message(payment))
    return attempts


def _queued(api, addresses) -> list[int]:
    from recovery import runner

    ids = []
    for attempt in _due(api, addresses):
        assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SENT
        ids.append(Notification.objects.get(attempt=attempt).pk)
    return ids


def _to(raw: bytes) -> str:
    return email.message_from_bytes(raw, policy=email.policy.default)["To"]


def test_a_recovery_job_sends_its_messages_in_one_delivery_job_over_one_session(
    api, smtp, monkeypatch, django_capture_on_commit_callbacks, run_jobs
):
    from notifications import tasks

    attempts = _due(api, [f"c{i}@example.com" for i in range(3)])
    jobs = []
    original = tasks.deliver_notifications.send
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: (jobs.append(list(ids)), original(ids))[1])
    monkeypatch.setattr(tasks.deliver_notification, "send", lambda *a: pytest.fail("one job per message"))

    with django_capture_on_commit_callbacks(execute=True):
        recovery_tasks.run_attempts.fn([a.pk for a in attempts])
    notifications = list(Notification.objects.filter(attempt__in=attempts).order_by("pk"))
    assert jobs == [[n.pk for n in notifications]]
    assert {n.status for n in notifications} == {"queued"}  # nothing leaves before the delivery job runs

    run_jobs()
    assert sorted(_to(raw) for raw in smtp) == ["c0@example.com", "c1@example.com", "c2@example.com"]
    assert smtp.sessions == 1
    for n in notifications:
        n.refresh_from_db()
        assert (n.status, n.attempts, n.error) == ("sent", 1, "")
        assert n.provider == "smtp" and n.provider_message_id and n.sent_at is not None


def test_delivery_jobs_hold_at_most_a_batch_each(api, settings, monkeypatch, django_capture_on_commit_callbacks):
    from notifications import tasks

    monkeypatch.setattr(services, "DELIVERY_BATCH", 2)
    attempts = _due(api, [f"c{i}@example.com" for i in range(5)])
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: jobs.append(list(ids)))
    with django_capture_on_commit_callbacks(execute=True):
        recovery_tasks.run_attempts.fn([a.pk for a in attempts])
    ids = list(Notification.objects.filter(attempt__in=attempts).order_by("pk").values_list("pk", flat=True))
    assert jobs == [ids[0:2], ids[2:4], ids[4:5]]


def test_a_refused_address_fails_only_its_own_message_and_a_retry_sends_no_message_twice(api, smtp):
    ids = _queued(api, ["a@example.com", REFUSED, "c@example.com"])

    with pytest.raises(services.DeliveryRetry) as raised:
        services.deliver_many(ids)
    assert str(ids[1]) in str(raised.value)
    assert sorted(_to(raw) for raw in smtp) == ["a@example.com", "c@example.com"]
    by_id = Notification.objects.in_bulk(ids)
    assert [by_id[pk].status for pk in ids] == ["sent", "queued", "sent"]
    assert by_id[ids[1]].attempts == 1 and "SMTPRecipientsRefused" in by_id[ids[1]].error
    assert by_id[ids[0]].attempts == by_id[ids[2]].attempts == 1

    # Dramatiq retries the job: only the message still queued goes out, once.
    smtp.refused.clear()
    assert [n.pk for n in services.deliver_many(ids)] == [ids[1]]
    assert sorted(_to(raw) for raw in smtp) == ["a@example.com", "c@example.com", REFUSED]
    assert set(Notification.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"sent"}
    assert Notification.objects.get(pk=ids[1]).attempts == 2

    # Once everything went out, the same job (or a duplicate of it) sends nothing.
    assert services.deliver_many(ids) == []
    assert len(smtp) == 3


def test_a_message_refused_on_every_try_ends_failed_while_the_others_are_sent(api, smtp):
    ids = _queued(api, [REFUSED, "b@example.com"])
    Notification.objects.filter(pk=ids[0]).update(attempts=services.MAX_ATTEMPTS - 1)

    sent = services.deliver_many(ids)  # nothing left to retry: no DeliveryRetry
    by_id = {n.pk: n for n in sent}
    assert by_id[ids[0]].status == "failed" and by_id[ids[0]].failed_at is not None
    assert by_id[ids[1]].status == "sent"
    assert [_to(raw) for raw in smtp] == ["b@example.com"]
    stored = Notification.objects.in_bulk(ids)
    assert (stored[ids[0]].status, stored[ids[1]].status) == ("failed", "sent")


def test_requeue_stuck_sends_lost_messages_in_batches(api, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from notifications import tasks

    monkeypatch.setattr(services, "DELIVERY_BATCH", 2)
    ids = _queued(api, [f"c{i}@example.com" for i in range(3)])
    Notification.objects.filter(pk__in=ids).update(updated_at=timezone.now() - timedelta(minutes=11))
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda chunk: jobs.append(sorted(chunk)))
    assert services.requeue_stuck() == 3
    assert sorted(pk for job in jobs for pk in job) == sorted(ids)
    assert [len(job) for job in jobs] == [2, 1]


def test_messaging_settings_edit_reaches_the_next_message_at_once(org):
    services._settings(org)  # a miss, remembered
    assert services.org_default_locale(org) == "en"
    MessagingSettings.objects.create(organization=org, default_locale="fr")
    fresh = type(org).objects.get(pk=org.pk)
    assert services.org_default_locale(fresh) == "fr"
