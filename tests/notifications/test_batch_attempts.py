"""A recovery job records its messages together (recovery.runner.run_notification_attempts): the same outcomes as
running each attempt alone, in far fewer queries, and one failing attempt does not stop the others."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifications import delivery, sending
from notifications.models import Notification, Suppression
from recovery import runner
from recovery import tasks as recovery_tasks
from recovery.models import AttemptStatus, Payment, RecoveryAttempt, RecoveryLink
from tests.notifications.conftest import due_message, ingest
from tinko import crypto

pytestmark = pytest.mark.django_db


def _customer(i, **extra):
    return {"id": f"c{i}", "email": f"c{i}@example.com", "name": f"Customer {i}", "timezone": "UTC", **extra}


def _due(api, customers):
    return [due_message(ingest(api, customer=c)) for c in customers]


def test_a_job_records_each_message_and_re_plans_each_payment_in_few_queries(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    from notifications import tasks

    attempts = _due(api, [_customer(i) for i in range(4)])
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: jobs.append(list(ids)))

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        recovery_tasks.run_attempts.fn([a.pk for a in attempts])

    # One at a time this took 17 queries per message; together it is a few per message plus a few per job (one of
    # them the job's look for re-charges, recovery.runner.run_recharges).
    assert len(queries) <= 4 * len(attempts) + 13, [q["sql"][:80] for q in queries]
    notifications = list(Notification.objects.filter(attempt__in=attempts).order_by("pk"))
    assert jobs == [[n.pk for n in notifications]]
    for attempt in attempts:
        attempt.refresh_from_db()
        assert attempt.status == AttemptStatus.SUCCEEDED and attempt.finished_at is not None
        assert attempt.lease_expires_at is None and attempt.outcome.startswith("E-mail (first notice, en) queued")
        n = Notification.objects.get(attempt=attempt)
        assert (n.status, n.recipient, n.link_id) == ("queued", attempt.payment.customer.email, attempt.link_id)
        assert attempt.link.status == "active"
        # The next message is planned, as after a message sent alone.
        payment = Payment.objects.get(pk=attempt.payment_id)
        assert payment.status == "recovering" and "Message 2 of 5" in payment.status_reason
        nxt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
        assert (nxt.kind, nxt.sequence) == ("notification", attempt.sequence + 1)
    # Encrypted at rest, as when sent alone.
    assert not Notification.objects.filter(text_encrypted__contains="Customer 0").exists()


def test_a_job_respects_suppression_records_the_24_hour_cap_and_settled_payments(api):
    earlier = ingest(api, customer=_customer(9))
    assert runner.run_attempt(due_message(earlier).pk) == runner.RunOutcome.SENT
    Suppression.objects.create(organization=earlier.organization, channel="email", address="c1@example.com",
                               reason="unsubscribed")
    sent, suppressed, twice_a, twice_b, capped, settled = _due(
        api, [_customer(0), _customer(1), _customer(2), _customer(2), _customer(9), _customer(3)]
    )
    Payment.objects.filter(pk=settled.payment_id).update(status="cancelled")

    outcomes = runner.run_notification_attempts([a.pk for a in (sent, suppressed, twice_a, twice_b, capped, settled)])

    done = runner.RunOutcome
    assert outcomes == {sent.pk: done.SENT, suppressed.pk: done.SKIPPED, twice_a.pk: done.SENT, twice_b.pk: done.DEFERRED,
                        capped.pk: done.DEFERRED, settled.pk: done.CANCELLED}
    n = Notification.objects.get(attempt=suppressed)
    assert (n.status, n.reason) == ("suppressed", "unsubscribed")
    suppressed.refresh_from_db()
    assert suppressed.status == AttemptStatus.SKIPPED and suppressed.link is None
    # Two payments of one customer in one job: the second meets the cap set by the first.
    first = Notification.objects.get(attempt=twice_a)
    second = Notification.objects.get(attempt=twice_b)
    assert first.status == "queued" and (second.status, second.reason) == ("suppressed", "frequency_cap")
    twice_b.refresh_from_db()
    assert twice_b.status == AttemptStatus.SCHEDULED and twice_b.scheduled_for == first.created_at + timedelta(hours=24)
    capped.refresh_from_db()
    assert capped.scheduled_for == Notification.objects.get(payment=earlier).created_at + timedelta(hours=24)
    assert Notification.objects.get(attempt=capped).reason == "frequency_cap"
    settled.refresh_from_db()
    assert settled.status == AttemptStatus.CANCELLED and not Notification.objects.filter(attempt=settled).exists()


def test_one_failing_attempt_does_not_stop_the_others_and_is_left_for_the_scheduler(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    from notifications import tasks

    attempts = _due(api, [_customer(i) for i in range(3)])
    broken = attempts[1]
    compose = sending.compose

    def failing(**kwargs):
        if kwargs["payment"].pk == broken.payment_id:
            raise RuntimeError("renderer crashed")
        return compose(**kwargs)

    monkeypatch.setattr(sending, "compose", failing)
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: jobs.append(list(ids)))

    with django_capture_on_commit_callbacks(execute=True), delivery.delivery_batch():
        outcomes = runner.run_notification_attempts([a.pk for a in attempts])
    with django_capture_on_commit_callbacks(execute=True):
        recovery_tasks.run_attempts.fn([broken.pk])  # the actor logs it and carries on too

    assert outcomes == {attempts[0].pk: runner.RunOutcome.SENT, broken.pk: runner.RunOutcome.ERROR, attempts[2].pk: runner.RunOutcome.SENT}
    for attempt in attempts:
        attempt.refresh_from_db()
    assert [a.status for a in attempts] == [AttemptStatus.SUCCEEDED, AttemptStatus.QUEUED, AttemptStatus.SUCCEEDED]
    # The failed attempt left nothing behind (no message, no link) and stays leased: the scheduler claims it again.
    assert broken.lease_expires_at is not None and broken.link is None
    assert not Notification.objects.filter(attempt=broken).exists()
    assert not RecoveryLink.objects.filter(payment_id=broken.payment_id).exists()
    # Only the messages that were recorded leave, each once.
    sent = list(Notification.objects.filter(attempt__in=[attempts[0], attempts[2]]).order_by("pk").values_list("pk", flat=True))
    assert sorted(pk for job in jobs for pk in job) == sent


def test_a_retried_job_or_a_second_job_after_the_lease_never_records_a_message_twice(api):
    attempts = _due(api, [_customer(i) for i in range(2)])
    ids = [a.pk for a in attempts]
    assert runner.run_notification_attempts(ids) == {ids[0]: "sent", ids[1]: "sent"}

    # The job runs again (a retry, or the scheduler re-sent it after the lease ran out).
    RecoveryAttempt.objects.filter(pk__in=ids).update(lease_expires_at=None)
    again = runner.run_notification_attempts(ids)

    assert again == {ids[0]: runner.RunOutcome.NOT_QUEUED, ids[1]: runner.RunOutcome.NOT_QUEUED}
    assert Notification.objects.filter(attempt__in=ids).count() == 2
    assert RecoveryLink.objects.filter(payment__attempts__in=ids).count() == 2


def test_a_job_reads_its_payments_live_links_at_once_and_reuses_them_or_makes_new_ones(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from notifications import tasks
    from recovery import services

    attempts = _due(api, [_customer(i) for i in range(3)])
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: None)
    # The first payment has a live link from an earlier message; the others have none.
    earlier, _ = services.create_link(payment=attempts[0].payment, now=timezone.now() - timedelta(hours=1),
                                      ttl=timedelta(hours=2))
    reads = []
    live_links = services._live_links
    monkeypatch.setattr(services, "_live_links", lambda ids, now: reads.append(sorted(ids)) or live_links(ids, now))

    with django_capture_on_commit_callbacks(execute=True):
        recovery_tasks.run_attempts.fn([a.pk for a in attempts])

    assert reads == [sorted(a.payment_id for a in attempts)]  # one read for the job, none per message
    links = {a.pk: RecoveryAttempt.objects.get(pk=a.pk).link for a in attempts}
    assert links[attempts[0].pk].pk == earlier.pk  # reused, its expiry extended to the full time to live
    assert links[attempts[0].pk].expires_at > timezone.now() + services.LINK_TTL - timedelta(minutes=5)
    assert {links[a.pk].pk for a in attempts[1:]}.isdisjoint({earlier.pk})
    assert RecoveryLink.objects.count() == 3
    for attempt in attempts:
        assert Notification.objects.get(attempt=attempt).link_id == links[attempt.pk].pk


def test_a_job_inserts_its_messages_and_new_links_rows_together_in_the_order_stored_and_schedules_each_queued_one_once(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    from notifications import tasks

    earlier = ingest(api, customer=_customer(9))
    assert runner.run_attempt(due_message(earlier).pk) == runner.RunOutcome.SENT
    Suppression.objects.create(organization=earlier.organization, channel="email", address="c1@example.com",
                               reason="unsubscribed")
    # Queued, suppressed (an opt-out), queued, deferred (the 24-hour cap, recorded as suppressed), queued.
    attempts = _due(api, [_customer(0), _customer(1), _customer(2), _customer(9), _customer(3)])
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: jobs.append(list(ids)))

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        recovery_tasks.run_attempts.fn([a.pk for a in attempts])

    inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "notifications_notification"')]
    assert len(inserts) == 1, inserts  # one statement for the job's five rows, not one save() each
    # Its three new pay links too, inserted before the messages that carry them.
    link_inserts = [i for i, q in enumerate(queries) if q["sql"].startswith('INSERT INTO "recovery_recoverylink"')]
    assert len(link_inserts) == 1 and link_inserts[0] < queries.captured_queries.index(
        next(q for q in queries if q["sql"] == inserts[0])
    )
    assert RecoveryLink.objects.filter(payment__attempts__in=attempts).count() == 3
    rows = list(Notification.objects.filter(attempt__in=attempts).order_by("pk"))
    # Ids in the order the attempts ran, as one by one; each row as save() stored it.
    assert [n.attempt_id for n in rows] == [a.pk for a in attempts]
    assert [(n.status, n.reason) for n in rows] == [
        ("queued", ""), ("suppressed", "unsubscribed"), ("queued", ""), ("suppressed", "frequency_cap"), ("queued", "")
    ]
    for n in rows:
        assert n.created_at == n.updated_at and n.public_id and n.organization_id == earlier.organization_id
        if n.status == "queued":
            assert n.next_attempt_at == n.created_at and n.sending_until is None and n.attempts == 0
            assert n.link_id == RecoveryAttempt.objects.get(pk=n.attempt_id).link_id is not None
            assert n.text_encrypted and "Customer" not in n.text_encrypted
            # The open pixel in the stored body names the row's own tracking id.
            assert reverse("notifications:open", args=[n.public_id]) in crypto.decrypt(n.html_encrypted)
        else:
            assert n.next_attempt_at is None and n.link_id is None
    # Only the queued ones leave, each once, in the order stored, after the commit.
    assert jobs == [[n.pk for n in rows if n.status == "queued"]]


def test_a_job_that_fails_while_storing_inserts_no_message_and_schedules_none(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    from notifications import compose as compose_module
    from notifications import tasks

    attempts = _due(api, [_customer(i) for i in range(2)])
    jobs = []
    monkeypatch.setattr(tasks.deliver_notifications, "send", lambda ids: jobs.append(list(ids)))
    def failing(groups):
        raise RuntimeError("db down")

    monkeypatch.setattr(compose_module, "bulk", SimpleNamespace(insert=failing))
    # Alone (the fallback after the job's transaction rolled back), each message is saved by itself and goes out.
    with django_capture_on_commit_callbacks(execute=True), delivery.delivery_batch():
        outcomes = runner.run_notification_attempts([a.pk for a in attempts])

    assert outcomes == {a.pk: runner.RunOutcome.SENT for a in attempts}
    rows = list(Notification.objects.filter(attempt__in=attempts).order_by("pk"))
    assert [n.attempt_id for n in rows] == [a.pk for a in attempts]
    assert jobs == [[n.pk for n in rows]]
