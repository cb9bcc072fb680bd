"""Delivering stored messages: a worker hands each ``queued`` Notification to its channel and records the outcome."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from notifications import channels, rendering, tracking
from notifications.copy import whatsapp_content_sid
from notifications.models import Notification, NotificationStatus
from notifications.rules import unsubscribe_url
from payments.models import Channel
from tinko import crypto, metrics

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6


def schedule(notification_id: int) -> None:
    from notifications.tasks import deliver_notification
    from tinko.background import send_safely

    batch = getattr(_batch, "ids", None)
    if batch is not None:
        # Inside delivery_batch(): sent with the others when the batch ends (only once this row is committed).
        transaction.on_commit(lambda: batch.append(notification_id))
        return
    # requeue_stuck sends it if the broker is down now.
    transaction.on_commit(lambda: send_safely(deliver_notification, notification_id))


_batch = threading.local()


@contextmanager
def delivery_batch():
    """Collect the messages stored inside the block and enqueue them together at its end, DELIVERY_BATCH per job.

    The recovery worker runs a few attempts per job; their messages then leave in
    one delivery job over one mail session instead of one job each. A message
    whose job could not be enqueued stays ``queued`` and :func:`requeue_stuck` sends it.
    """
    from notifications.tasks import deliver_notifications

    if getattr(_batch, "ids", None) is not None:  # nested: the outer block sends
        yield
        return
    _batch.ids = ids = []

    def send():
        for position in range(0, len(ids), DELIVERY_BATCH):
            chunk = ids[position:position + DELIVERY_BATCH]
            try:
                deliver_notifications.send(chunk)
            except Exception:
                logger.exception("Could not enqueue the delivery of notifications %s; they are sent when found stuck",
                                 chunk)

    try:
        yield
    finally:
        _batch.ids = None
        # Inside an outer transaction the messages' rows are not committed yet: send after it commits
        # (its on_commit callbacks run in order, so every id collected above is in by then).
        transaction.on_commit(send)


class DeliveryRetry(Exception):
    """Raised so that Dramatiq tries again later; the row holds the error."""


def deliver(notification_id: int, *, connection=None) -> Notification | None:
    """Send a queued notification once and record the outcome. Two workers given one id never both send it."""
    with transaction.atomic():
        n = (Notification.objects.select_for_update(of=("self",)).select_related("organization")
             .filter(pk=notification_id).first())
        if n is None or n.status != NotificationStatus.QUEUED:
            return n
        retry = _send_one(n, now=timezone.now(), connection=connection)
        n.save(update_fields=DELIVERY_FIELDS)
        if n.status == NotificationStatus.FAILED:
            tracking.notification_event(n, "notification.failed")
    if retry:
        raise DeliveryRetry(f"notification {n.pk}: attempt {n.attempts} failed")
    return n


DELIVERY_FIELDS = ["status", "error", "provider", "provider_message_id", "attempts", "sent_at", "failed_at", "updated_at"]
# How many stored messages one delivery job sends (one transaction, one mail session).
DELIVERY_BATCH = 10


def deliver_many(notification_ids: list[int], *, connection=None) -> list[Notification]:
    """Send several queued notifications in one job: one transaction, one mail session, one write.

    The rows are locked (in id order, so two jobs never deadlock) and only those
    still ``queued`` are sent: a retried job, or a second job given the same id,
    never sends a message twice. Each message's outcome is its own: a refused
    address fails that message only; after an outage the messages that went out
    are recorded ``sent`` and :class:`DeliveryRetry` is raised (after commit) so
    that the job is tried again for the others.
    """
    retry = []
    with transaction.atomic():
        rows = list(Notification.objects.select_for_update(of=("self",)).select_related("organization")
                    .filter(pk__in=notification_ids, status=NotificationStatus.QUEUED).order_by("pk"))
        if not rows:
            return []
        now = timezone.now()
        for n in rows:
            if _send_one(n, now=now, connection=connection):
                retry.append(n)
        Notification.objects.bulk_update(rows, DELIVERY_FIELDS)
        for n in rows:
            if n.status == NotificationStatus.FAILED:
                tracking.notification_event(n, "notification.failed")
    if retry:
        raise DeliveryRetry(f"notifications {[n.pk for n in retry]}: attempt failed ({retry[0].error})")
    return rows


def _send_one(n: Notification, *, now, connection=None) -> bool:
    """Hand one locked, queued notification to its channel and set its outcome on ``n`` (not saved).

    True when it should be tried again later (an outage), False when it is done (sent or failed for good).
    """
    text = crypto.decrypt(n.text_encrypted) if n.text_encrypted else ""
    retry = False
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
        n.error = f"{type(exc).__name__}: {exc}"[:500]
        if n.attempts + 1 >= MAX_ATTEMPTS:
            n.status, n.failed_at = NotificationStatus.FAILED, now
        else:
            retry = True
    else:
        n.status, n.sent_at, n.error = NotificationStatus.SENT, now, ""
    n.attempts += 1
    n.updated_at = now
    metrics.notification(n.channel, "retrying" if retry else n.status)
    return retry


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


def requeue_stuck(*, now=None) -> int:
    """Queued notifications no worker has picked up for 10 minutes (the broker lost them) are sent after all."""
    from notifications.tasks import deliver_notifications

    now = now or timezone.now()
    stuck = list(Notification.objects.filter(status=NotificationStatus.QUEUED, updated_at__lt=now - timedelta(minutes=10))
                 .values_list("pk", flat=True)[:1000])
    for position in range(0, len(stuck), DELIVERY_BATCH):
        deliver_notifications.send(stuck[position:position + DELIVERY_BATCH])
    return len(stuck)
