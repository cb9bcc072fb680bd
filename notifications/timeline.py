"""A payment's messages and merchant-webhook deliveries, for its timeline (recovery/timeline.py)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from notifications.models import Notification, NotificationStatus, WebhookDelivery
from notifications.channels import mask
from recovery.timeline import TimelineEntry
from tinko.formatting import format_language, format_when


def notification_entries(payment):
    for n in Notification.objects.filter(payment_id=payment.pk).order_by("created_at", "pk"):
        title = _("%(channel)s %(kind)s to %(recipient)s") % {
            "channel": n.get_channel_display(),
            "kind": n.get_kind_display().lower() if n.kind else _("message"),
            "recipient": mask(n.recipient) or _("nobody"),
        }
        if n.status == NotificationStatus.SUPPRESSED:
            detail = (_("Not sent: %(reason)s.") % {"reason": n.get_reason_display()} + f" {n.error}").strip()
        else:
            detail = n.error
        data = {_("Language"): format_language(n.locale)} if n.locale else {}
        if n.segments:
            data[_("SMS segments")] = str(n.segments)
        for label, value in ((_("Sent"), n.sent_at), (_("Delivered"), n.delivered_at), (_("Failed"), n.failed_at)):
            if value:
                data[label] = format_when(value)
        if n.opens:
            data[_("Opens")] = str(n.opens)
        if n.clicks:
            data[_("Clicks")] = str(n.clicks)
        yield TimelineEntry(at=n.created_at, kind="message", title=title, detail=detail, status=n.status, data=data)


def webhook_entries(payment):
    deliveries = (WebhookDelivery.objects.filter(message__payment_id=payment.pk)
                  .select_related("message", "endpoint").order_by("created_at", "pk"))
    for d in deliveries:
        data = {_("Attempts"): str(d.attempt_count), _("Webhook id"): d.message.msg_id}
        if d.last_status_code:
            data[_("HTTP status")] = str(d.last_status_code)
        yield TimelineEntry(
            at=d.created_at, kind="webhook",
            title=_("Webhook %(event)s to %(url)s") % {"event": d.message.event_type, "url": d.endpoint.url},
            detail=d.last_error, status=d.status, data=data,
        )
