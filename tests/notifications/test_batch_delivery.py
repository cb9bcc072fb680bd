"""Messages stored by one recovery job leave together: one delivery job, one transaction, one mail session."""

from __future__ import annotations

import email
import email.policy

import pytest

from notifications import channels, copy, delivery
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

    monkeypatch.setattr(delivery, "DELIVERY_BATCH", 2)
    attempts = _due(api, [f"c{i}@example.com" for i in range(5)])
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: jobs.append(list(ids)))
    with django_capture_on_commit_callbacks(execute=True):
        recovery_tasks.run_attempts.fn([a.pk for a in attempts])
    ids = list(Notification.objects.filter(attempt__in=attempts).order_by("pk").values_list("pk", flat=True))
    assert jobs == [ids[0:2], ids[2:4], ids[4:5]]


def test_a_refused_address_is_retried_later_by_its_row_and_no_message_goes_twice(api, smtp):
    from datetime import timedelta

    from django.utils import timezone

    ids = _queued(api, ["a@example.com", REFUSED, "c@example.com"])
    now = timezone.now()

    tried = delivery.deliver_many(ids, now=now)  # no exception: the outcome is on each row
    assert [n.pk for n in tried] == ids
    assert sorted(_to(raw) for raw in smtp) == ["a@example.com", "c@example.com"]
    by_id = Notification.objects.in_bulk(ids)
    assert [by_id[pk].status for pk in ids] == ["sent", "queued", "sent"]
    refused = by_id[ids[1]]
    assert refused.attempts == 1 and "SMTPRecipientsRefused" in refused.error
    assert refused.next_attempt_at == now + delivery.RETRY_SCHEDULE[0] and refused.sending_until is None
    assert by_id[ids[0]].next_attempt_at is None and by_id[ids[0]].attempts == 1

    # A duplicate job before the retry is due sends nothing.
    assert delivery.deliver_many(ids, now=now + timedelta(seconds=5)) == []

    # The server accepts it now: the retry, when due, sends it once.
    smtp.refused.clear()
    later = now + delivery.RETRY_SCHEDULE[0]
    assert [n.pk for n in delivery.deliver_many(ids, now=later)] == [ids[1]]
    assert sorted(_to(raw) for raw in smtp) == ["a@example.com", "c@example.com", REFUSED]
    refused.refresh_from_db()
    assert (refused.status, refused.attempts, refused.error, refused.next_attempt_at) == ("sent", 2, "", None)
    assert delivery.deliver_many(ids, now=later + timedelta(hours=1)) == []
    assert len(smtp) == 3


def test_a_message_refused_on_every_try_is_given_up_with_the_reason(api, smtp, django_capture_on_commit_callbacks):
    from django.utils import timezone

    ids = _queued(api, [REFUSED, "b@example.com"])
    at = timezone.now()
    for attempt in range(1, delivery.MAX_ATTEMPTS + 1):
        with django_capture_on_commit_callbacks(execute=False):
            delivery.deliver_many(ids, now=at)
        n = Notification.objects.get(pk=ids[0])
        assert n.attempts == attempt
        if attempt < delivery.MAX_ATTEMPTS:
            assert n.status == "queued" and n.next_attempt_at == at + delivery.RETRY_SCHEDULE[attempt - 1]
            at = n.next_attempt_at
    assert n.status == "failed" and n.failed_at == at and n.next_attempt_at is None
    assert n.error.startswith(f"Gave up after {delivery.MAX_ATTEMPTS} tries; last: SMTPRecipientsRefused")
    assert Notification.objects.get(pk=ids[1]).status == "sent"
    assert [_to(raw) for raw in smtp] == ["b@example.com"]
    assert delivery.deliver_many(ids, now=at + timedelta_hours(24)) == []


def timedelta_hours(hours):
    from datetime import timedelta

    return timedelta(hours=hours)


def test_a_worker_that_died_while_sending_leaves_its_message_failed_in_doubt_never_sent_twice(api, smtp):
    from django.utils import timezone

    (pk,) = _queued(api, ["a@example.com"])
    now = timezone.now()
    claimed = delivery._claim([pk], now)  # a worker took it, then was killed before recording anything
    assert [n.pk for n in claimed] == [pk]

    # While its lease lasts, no other job touches it.
    assert delivery.deliver_many([pk], now=now + delivery.LEASE / 2) == []
    # After it, the message is failed as in doubt, not sent again.
    assert delivery.deliver_many([pk], now=now + delivery.LEASE) == []
    n = Notification.objects.get(pk=pk)
    assert (n.status, n.error, n.sending_until, n.next_attempt_at) == ("failed", delivery.IN_DOUBT, None, None)
    assert len(smtp) == 0


def test_the_sweep_enqueues_overdue_messages_in_batches_and_leaves_fresh_ones_to_their_own_job(api, monkeypatch):
    from django.utils import timezone

    from notifications import tasks

    monkeypatch.setattr(delivery, "DELIVERY_BATCH", 2)
    ids = _queued(api, [f"c{i}@example.com" for i in range(3)])
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda chunk: jobs.append(sorted(chunk)))
    now = timezone.now()
    assert delivery.enqueue_due(now=now) == 0
    assert delivery.enqueue_due(now=now + delivery.SWEEP_GRACE + timedelta_hours(0.01)) == 3
    assert sorted(pk for job in jobs for pk in job) == sorted(ids)
    assert [len(job) for job in jobs] == [2, 1]


def test_delivery_jobs_are_never_retried_by_dramatiq():
    from notifications import tasks

    assert tasks.deliver_notifications.options["max_retries"] == 0
    assert tasks.enqueue_due_notifications.options["max_retries"] == 0
    assert not hasattr(tasks, "requeue_stuck_notifications")


def test_messaging_settings_edit_reaches_the_next_message_at_once(org):
    copy.org_copy(org)  # a miss, remembered
    assert copy.org_default_locale(org) == "en"
    MessagingSettings.objects.create(organization=org, default_locale="fr")
    fresh = type(org).objects.get(pk=org.pk)
    assert copy.org_default_locale(fresh) == "fr"


def test_a_template_edit_reaches_the_next_job_and_one_job_reads_the_copy_once(org, django_assert_num_queries):
    from notifications.models import MessageTemplate

    def fresh():
        return type(org).objects.get(pk=org.pk)

    with delivery.delivery_batch():
        copy.org_copy(fresh())
        another = fresh()
        with django_assert_num_queries(0):
            copy.org_copy(another)  # another message of the same job: no query
        MessageTemplate.objects.create(organization=org, channel="email", kind="reminder", locale="en",
                                       subject="S", text="T")
    assert ("email", "reminder", "en") in copy.org_copy(fresh()).templates


def test_a_job_that_outlived_its_lease_records_no_outcome_over_the_rows_another_claim_failed(api, smtp, monkeypatch):
    from django.utils import timezone

    ids = _queued(api, ["a@example.com", "b@example.com"])
    now = timezone.now()
    send_one = delivery._send_one

    def slow_send(n, **kwargs):
        send_one(n, **kwargs)
        if n.pk == ids[0]:
            # This job ran past its lease: another claim found the first row and failed it as in doubt.
            delivery._claim([ids[0]], now + delivery.LEASE)

    monkeypatch.setattr(delivery, "_send_one", slow_send)
    delivery.deliver_many(ids, now=now)
    first, second = (Notification.objects.get(pk=pk) for pk in ids)
    assert (first.status, first.error) == ("failed", delivery.IN_DOUBT)  # not overwritten with "sent"
    assert (second.status, second.sending_until) == ("sent", None)
