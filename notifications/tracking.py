"""What happened to a message after it left: status from the providers (delivered, failed, bounced), opens and
clicks, and the merchant webhooks they raise."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications.channels import mask
from notifications.models import Notification, NotificationStatus
from tinko import metrics

RANK = {NotificationStatus.QUEUED: 0, NotificationStatus.SENT: 1, NotificationStatus.DELIVERED: 2,
        NotificationStatus.FAILED: 2, NotificationStatus.BOUNCED: 3, NotificationStatus.SUPPRESSED: 0}


def record_status(notification: Notification, status: str, *, error: str = "", at=None) -> bool:
    """Move a notification forward (never back: a late "sent" does not undo "delivered"). True if it changed."""
    at = at or timezone.now()
    with transaction.atomic():
        n = Notification.objects.select_for_update().get(pk=notification.pk)
        if n.status == status or RANK[status] < RANK[n.status] or n.status == NotificationStatus.SUPPRESSED:
            return False
        if RANK[status] == RANK[n.status] and status != NotificationStatus.BOUNCED:
            return False
        n.status = status
        n.updated_at = at
        if status == NotificationStatus.SENT:
            n.sent_at = n.sent_at or at
        elif status == NotificationStatus.DELIVERED:
            n.delivered_at = at
        else:
            n.failed_at = at
            n.error = error[:500] or n.error
        n.save(update_fields=["status", "updated_at", "sent_at", "delivered_at", "failed_at", "error"])
        metrics.notification(n.channel, status)
        if status == NotificationStatus.DELIVERED:
            notification_event(n, "notification.delivered")
        elif status in (NotificationStatus.FAILED, NotificationStatus.BOUNCED):
            notification_event(n, "notification.failed")
    notification.status = status
    return True


def count_engagement(notification: Notification, *, opened: bool = False, clicked: bool = False, at=None) -> None:
    at = at or timezone.now()
    updates = {}
    if opened:
        updates["opens"] = F("opens") + 1
    if clicked:
        updates["clicks"] = F("clicks") + 1
    if updates:
        Notification.objects.filter(pk=notification.pk).update(**updates)
    if opened:
        Notification.objects.filter(pk=notification.pk, first_opened_at__isnull=True).update(first_opened_at=at)
    if clicked:
        Notification.objects.filter(pk=notification.pk, first_clicked_at__isnull=True).update(first_clicked_at=at)


def count_link_click(link, *, at) -> None:
    """The customer opened the pay link a message carried: a click for that message."""
    Notification.objects.filter(link=link).update(
        clicks=F("clicks") + 1, first_clicked_at=Coalesce(F("first_clicked_at"), Value(at))
    )


def notification_event(n: Notification, event_type: str) -> None:
    """The merchant's ``notification.delivered`` / ``notification.failed`` webhook (none for test messages)."""
    if n.is_test:
        return
    from notifications import webhooks

    webhooks.emit(organization_id=n.organization_id, event_type=event_type, payment_id=n.payment_id, data={
        "notification": {
            "id": n.public_id, "channel": n.channel, "kind": n.kind, "status": n.status, "error": n.error,
            "recipient": mask(n.recipient),
        },
        "payment": {"reference": n.payment.reference} if n.payment_id else None,
    })
