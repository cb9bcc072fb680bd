"""A payment's messages and merchant-webhook deliveries, for its timeline (recovery/timeline.py)."""

from __future__ import annotations

from notifications.models import Notification, NotificationStatus, WebhookDelivery
from notifications.services import mask
from recovery.timeline import TimelineEntry


def notification_entries(payment):
    for n in Notification.objects.filter(payment_id=payment.pk).order_by("created_at", "pk"):
        title = f"{n.get_channel_display()} {n.get_kind_display().lower() if n.kind else 'message'} to {mask(n.recipient) or 'nobody'}"
        if n.status == NotificationStatus.SUPPRESSED:
            detail = f"Not sent: {n.get_reason_display()}. {n.error}".strip()
        else:
            detail = n.error
        data = {"language": n.locale} if n.locale else {}
        if n.segments:
            data["SMS segments"] = n.segments
        for label, value in (("sent", n.sent_at), ("delivered", n.delivered_at), ("failed", n.failed_at)):
            if value:
                data[label] = value.isoformat(timespec="seconds")
        if n.opens:
            data["opens"] = n.opens
        if n.clicks:
            data["clicks"] = n.clicks
        yield TimelineEntry(at=n.created_at, kind="message", title=title, detail=detail, status=n.status, data=data)


def webhook_entries(payment):
    deliveries = (WebhookDelivery.objects.filter(message__payment_id=payment.pk)
                  .select_related("message", "endpoint").order_by("created_at", "pk"))
    for d in deliveries:
        yield TimelineEntry(
            at=d.created_at, kind="webhook", title=f"Webhook {d.message.event_type} to {d.endpoint.url}",
            detail=d.last_error, status=d.status,
            data={"attempts": d.attempt_count, "webhook-id": d.message.msg_id,
                  **({"HTTP status": d.last_status_code} if d.last_status_code else {})},
        )
