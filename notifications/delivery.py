"""Delivering stored messages, scheduled and retried by their own rows (like merchant webhook deliveries).

A ``queued`` Notification is due at ``next_attempt_at``. It is sent by a
worker that claims it: the claim (``SELECT … FOR UPDATE SKIP LOCKED`` on due
rows) takes a lease (``sending_until``, and ``next_attempt_at`` moved past it
so nobody else finds it due), the message goes out outside any transaction,
and a second short transaction records the outcome and clears the lease:

* sent → ``sent``;
* refused for good (invalid number, unverified sender) → ``failed`` with the reason;
* an outage (SMTP, the ESP or Twilio down) → still ``queued``, ``attempts`` + 1, the
  error kept and ``next_attempt_at`` set from :data:`RETRY_SCHEDULE`; after
  :data:`MAX_ATTEMPTS` tries → ``failed`` ("gave up after …").

That is the only retry mechanism: jobs are enqueued after commit (the fast
path: :func:`schedule`, :func:`delivery_batch`), a retry due within a minute is
enqueued with that delay, and the scheduler's sweep (:func:`enqueue_due`,
every 30 s) enqueues whatever is overdue (longer retries, a job the broker
lost). Dramatiq never retries a delivery job, and any number of jobs naming
one message send it once.

A worker that dies while sending (killed, out of memory) leaves its lease
behind: whether the provider took the message is unknown. When the lease runs
out the next claim marks the message ``failed`` with that reason instead of
sending it again, so a customer never gets one message twice (the Outbox shows
it; the merchant gets ``notification.failed``).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications import channels, rendering, tracking
from notifications.copy import read_once, whatsapp_content_sid
from notifications.models import Notification, NotificationStatus
from notifications.rules import unsubscribe_url
from recovery.models import Channel
from tinko import bulk, crypto, metrics

logger = logging.getLogger(__name__)

# Waits after the 1st, 2nd … failed try; one try more than waits in all.
RETRY_SCHEDULE = [timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1),
                  timedelta(hours=4)]
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
# A delivery job's time limit (tasks.py) is well inside its lease: a live worker never loses its messages.
JOB_TIME_LIMIT = timedelta(minutes=2)
LEASE = timedelta(minutes=5)
# How many stored messages one delivery job sends (one claim, one mail session, one write).
DELIVERY_BATCH = 10
# The sweep leaves a message this long to its own job before calling it overdue.
SWEEP_GRACE = timedelta(minutes=1)
IN_DOUBT = ("The worker sending this message stopped before recording whether it went out; "
            "it is not sent again, so that the customer never receives it twice.")

DELIVERY_FIELDS = ["status", "error", "provider", "provider_message_id", "attempts", "sent_at", "failed_at",
                   "updated_at", "next_attempt_at", "sending_until"]


# --- Scheduling ---------------------------------------------------------------------------------------------


def schedule(notification_id: int) -> None:
    """Have a worker send this stored, ``queued`` message once the current transaction commits.

    Inside :func:`delivery_batch` it leaves with the block's other messages. If
    the broker is down the scheduler's sweep sends it (its row is due).
    """
    batch = getattr(_batch, "ids", None)
    if batch is not None:
        transaction.on_commit(lambda: batch.append(notification_id))
        return
    transaction.on_commit(lambda: _enqueue([notification_id]))


_batch = threading.local()


@contextmanager
def delivery_batch():
    """Collect the messages stored inside the block and enqueue them together at its end, DELIVERY_BATCH per job.

    The recovery worker runs a few attempts per job; their messages then leave in
    one delivery job over one mail session instead of one job each, and each
    organization's copy is read once for them (``copy.read_once``).
    """
    if getattr(_batch, "ids", None) is not None:  # nested: the outer block sends
        yield
        return
    _batch.ids = ids = []
    try:
        with read_once():
            yield
    finally:
        _batch.ids = None
        # Inside an outer transaction the messages' rows are not committed yet: send after it commits
        # (its on_commit callbacks run in order, so every id collected above is in by then).
        transaction.on_commit(lambda: _enqueue(ids))


def _enqueue(ids: list[int], *, delay_ms: int | None = None) -> None:
    """Jobs of DELIVERY_BATCH messages; with the broker down the rows wait for the sweep (they are due)."""
    from notifications.tasks import deliver_notifications
    from tinko.background import send_safely

    for position in range(0, len(ids), DELIVERY_BATCH):
        if not send_safely(deliver_notifications, ids[position:position + DELIVERY_BATCH], delay=delay_ms):
            return


def enqueue_due(*, now=None, limit: int = 1000) -> int:
    """The scheduler's sweep: enqueue queued messages overdue by SWEEP_GRACE (retries, jobs the broker lost)."""
    now = now or timezone.now()
    ids = list(Notification.objects.filter(status=NotificationStatus.QUEUED, next_attempt_at__lte=now - SWEEP_GRACE)
               .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    _enqueue(ids)
    return len(ids)


# --- Sending ------------------------------------------------------------------------------------------------


def deliver(notification_id: int, *, connection=None, now=None) -> Notification | None:
    """Send one due message (see :func:`deliver_many`); the row as it is afterwards."""
    deliver_many([notification_id], connection=connection, now=now)
    return Notification.objects.filter(pk=notification_id).first()


def deliver_many(notification_ids: list[int], *, connection=None, now=None) -> list[Notification]:
    """Claim the due messages among ``notification_ids``, send them over one mail session, record each outcome.

    Returns the messages this call tried. Messages that are not due (sent, failed,
    waiting for their next try, or claimed by another worker) are left alone, so
    a duplicate job sends nothing twice. Must not raise for a provider's failure:
    the outcome is on each row.
    """
    now = now or timezone.now()
    claimed = _claim(notification_ids, now)
    if not claimed:
        return []
    lease = claimed[0].sending_until
    tried = []
    try:
        for n in claimed:
            _send_one(n, now=now, connection=connection)
            tried.append(n)
    finally:
        # Interrupted (the job's time limit, a shutdown): the messages not tried are due again at once.
        for n in claimed[len(tried):]:
            n.sending_until, n.next_attempt_at = None, now
        _record(claimed, lease=lease)
    # A try due within a minute gets its own delayed job; later ones are found by the sweep.
    soon = [n for n in tried if n.status == NotificationStatus.QUEUED and n.next_attempt_at - now <= timedelta(minutes=1)]
    if soon:
        delay_ms = int(max(n.next_attempt_at - now for n in soon).total_seconds() * 1000)
        transaction.on_commit(lambda: _enqueue([n.pk for n in soon], delay_ms=delay_ms))
    return tried


def _claim(ids: list[int], now) -> list[Notification]:
    """Lock the due, unclaimed rows among ``ids`` (skipping rows another worker holds) and lease them to this worker.

    A due row that still carries a lease was being sent by a worker that died:
    it is failed as in doubt (:data:`IN_DOUBT`), not sent again.
    """
    with transaction.atomic():
        rows = list(Notification.objects.select_for_update(of=("self",), skip_locked=True)
                    .select_related("organization")
                    .filter(pk__in=ids, status=NotificationStatus.QUEUED,
                            next_attempt_at__lte=now + timedelta(seconds=1))
                    .order_by("pk"))
        if not rows:
            return []
        lease = now + LEASE
        claimed = [n for n in rows if n.sending_until is None]
        in_doubt = [n for n in rows if n.sending_until is not None]
        for n in claimed:
            n.sending_until = n.next_attempt_at = lease
        if claimed:
            Notification.objects.filter(pk__in=[n.pk for n in claimed]).update(sending_until=lease, next_attempt_at=lease)
        for n in in_doubt:
            n.status, n.error, n.failed_at, n.updated_at = NotificationStatus.FAILED, IN_DOUBT, now, now
            n.sending_until = n.next_attempt_at = None
        if in_doubt:
            Notification.objects.bulk_update(in_doubt, ["status", "error", "failed_at", "updated_at", "sending_until",
                                                        "next_attempt_at"])
        for n in in_doubt:
            logger.warning("Notification %s was left in doubt by a stopped worker; marked failed", n.pk)
            metrics.notification(n.channel, NotificationStatus.FAILED)
            tracking.notification_event(n, "notification.failed")
    return claimed


def _record(rows: list[Notification], *, lease) -> None:
    """Store the outcomes of one claim, for the rows whose lease is still this worker's."""
    with transaction.atomic():
        # Only rows whose lease is still this claim's (one statement; the lease cannot have run out unless the
        # job outlived its time limit, and then another claim has failed them as in doubt).
        mine = rows
        if bulk.update(Notification, rows, DELIVERY_FIELDS, where=Q(sending_until=lease)) < len(rows):
            stored = dict(Notification.objects.filter(pk__in=[n.pk for n in rows]).values_list("pk", "status"))
            mine = [n for n in rows if stored.get(n.pk) == n.status]
            logger.error("Notifications %s: lease lost before the outcome was recorded",
                         [n.pk for n in rows if n not in mine])
        for n in mine:
            if n.status == NotificationStatus.FAILED:
                tracking.notification_event(n, "notification.failed")


def _send_one(n: Notification, *, now, connection=None) -> None:
    """Hand one claimed message to its channel and set its outcome on ``n`` (not saved); never raises for a
    provider's failure."""
    text = crypto.decrypt(n.text_encrypted) if n.text_encrypted else ""
    outcome = ""
    try:
        if n.channel == Channel.EMAIL:
            html = crypto.decrypt(n.html_encrypted) if n.html_encrypted else ""
            n.provider, n.provider_message_id = channels.send_email(
                notification=n, text=text, html=html,
                unsubscribe_url=unsubscribe_url(n) if not n.is_test else "", connection=connection,
            )
        elif channels.capturing() and not channels.twilio_configured():
            n.provider, n.provider_message_id = "outbox", f"outbox-{n.public_id}"
        else:
            content_sid, variables = _whatsapp_content(n)
            n.provider, n.provider_message_id = channels.send_twilio(
                notification=n, text=text, content_sid=content_sid, content_variables=variables
            )
    except channels.PermanentFailure as exc:
        n.status, n.error, n.failed_at = NotificationStatus.FAILED, str(exc)[:500], now
    except Exception as exc:  # SMTP, ESP or Twilio outage: try again later
        error = f"{type(exc).__name__}: {exc}"
        if n.attempts + 1 >= MAX_ATTEMPTS:
            n.status, n.failed_at = NotificationStatus.FAILED, now
            n.error = f"Gave up after {n.attempts + 1} tries; last: {error}"[:500]
        else:
            n.error, n.next_attempt_at = error[:500], now + RETRY_SCHEDULE[n.attempts]
            outcome = "retrying"
    else:
        n.status, n.sent_at, n.error = NotificationStatus.SENT, now, ""
    n.attempts += 1
    n.updated_at = now
    n.sending_until = None
    if n.status != NotificationStatus.QUEUED:
        n.next_attempt_at = None
    metrics.notification(n.channel, outcome or n.status)


def _whatsapp_content(n) -> tuple[str, dict]:
    """An approved Content template for this kind, with the variables it is filled with (1: name, 2: amount, 3: link)."""
    if n.channel != Channel.WHATSAPP:
        return "", {}
    sid = whatsapp_content_sid(n.organization, n.kind)
    if not sid or n.payment is None:
        return sid, {}
    context = rendering.build_context(
        organization=n.organization, customer=n.customer, payment=n.payment, locale=n.locale,
        pay_url=crypto.decrypt(n.pay_url_encrypted) if n.pay_url_encrypted else "",
    )
    return sid, {"1": context["customer_name"] or "-", "2": context["amount"], "3": context["pay_url"]}
