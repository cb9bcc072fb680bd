"""Public endpoints of notifications: Twilio callbacks, anymail tracking events, unsubscribe, the open pixel.

Twilio requests are believed only with a valid ``X-Twilio-Signature`` (checked
with Twilio's own validator against the URL Twilio called; without
``TWILIO_AUTH_TOKEN`` nothing is believed); anymail's endpoints are closed
unless they can authenticate their sender (notifications/esp_webhooks.py).
"""

from __future__ import annotations

import base64
import logging

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import channels, rules, tracking
from notifications.models import Notification, NotificationStatus, SuppressionReason
from recovery.models import Channel
from tinko.webhook_guard import json_error, webhook_endpoint

logger = logging.getLogger(__name__)

TWILIO_STATUS = {
    "sent": NotificationStatus.SENT,
    "delivered": NotificationStatus.DELIVERED,
    "read": NotificationStatus.DELIVERED,
    "undelivered": NotificationStatus.FAILED,
    "failed": NotificationStatus.FAILED,
}
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
START_WORDS = {"START", "YES", "UNSTOP", "OPTIN"}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _twilio_verified(request) -> bool:
    # Twilio signs the URL it called: behind a proxy that is SITE_URL + path, not what Django sees.
    url = settings.SITE_URL + request.get_full_path()
    params = {key: request.POST.get(key) for key in request.POST}
    return channels.twilio_signature_valid(url=url, params=params, signature=request.headers.get("X-Twilio-Signature", ""))


@csrf_exempt
@require_POST
@webhook_endpoint
def twilio_status(request):
    """Status callback of an SMS or WhatsApp message: queued → sent → delivered | failed."""
    if not _twilio_verified(request):
        return json_error(400, "Invalid Twilio signature.")
    sid = request.POST.get("MessageSid", "")
    status = TWILIO_STATUS.get(request.POST.get("MessageStatus", ""))
    notification = Notification.objects.filter(provider="twilio", provider_message_id=sid).first() if sid else None
    if notification is not None and status is not None:
        code = request.POST.get("ErrorCode", "")
        tracking.record_status(notification, status, error=f"Twilio error {code}" if code else "")
    # 200 for unknown messages and statuses too (e.g. "sending"): Twilio has nothing to retry.
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
@webhook_endpoint
def twilio_inbound(request):
    """A customer's reply: STOP-like keywords suppress the channel for every merchant that messaged them from that number."""
    if not _twilio_verified(request):
        return json_error(400, "Invalid Twilio signature.")
    sender = request.POST.get("From", "")
    to = request.POST.get("To", "")
    word = request.POST.get("Body", "").strip().upper().rstrip(".!")
    channel = Channel.WHATSAPP if sender.startswith("whatsapp:") else Channel.SMS
    phone = sender.removeprefix("whatsapp:")
    our_number = to.removeprefix("whatsapp:")
    if word in STOP_WORDS or word in START_WORDS:
        # Twilio applies STOP per sending number, so do we: the orgs that messaged this phone from it.
        orgs = {n.organization for n in Notification.objects.filter(
            channel=channel, recipient=phone, sender=our_number, is_test=False,
        ).select_related("organization").order_by().distinct("organization")} if phone else set()
        for organization in orgs:
            if word in STOP_WORDS:
                rules.suppress(organization=organization, channel=channel, address=phone, reason=SuppressionReason.STOP,
                                  detail=f"Replied {word} to {our_number}")
            else:
                rules.resubscribe(organization=organization, channel=channel, address=phone)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """One-click unsubscribe (RFC 8058): mail clients POST here; people see a page with a button first."""
    notification = rules.notification_for_unsubscribe(token)
    if notification is None or not notification.recipient:
        return render(request, "notifications/unsubscribe.html", {"invalid": True}, status=404)
    organization = notification.organization
    if request.method == "POST":
        rules.suppress(organization=organization, channel=notification.channel, address=notification.recipient,
                          reason=SuppressionReason.UNSUBSCRIBED, detail=f"Unsubscribe link in message {notification.public_id}")
        return render(request, "notifications/unsubscribe.html", {"done": True, "merchant": organization.brand_name})
    return render(request, "notifications/unsubscribe.html", {
        "merchant": organization.brand_name, "masked": channels.mask(notification.recipient),
    })


PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@require_GET
def open_pixel(request, public_id):
    """The 1×1 image at the end of an HTML e-mail: counts opens (where the mail client loads images)."""
    notification = Notification.objects.filter(public_id=public_id, channel=Channel.EMAIL).only("pk").first()
    if notification is not None:
        tracking.count_engagement(notification, opened=True, at=timezone.now())
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    return response


# --- anymail tracking events (connected in NotificationsConfig.ready) ----------------------------------------

ANYMAIL_STATUS = {
    "sent": NotificationStatus.SENT,
    "delivered": NotificationStatus.DELIVERED,
    "bounced": NotificationStatus.BOUNCED,
    "rejected": NotificationStatus.FAILED,
    "failed": NotificationStatus.FAILED,
}


def on_tracking_event(sender, event, esp_name, **kwargs):
    """Move the e-mail's notification on; bounces and complaints suppress the address for the organization."""
    public_id = (event.metadata or {}).get("notification")
    notification = None
    if public_id:
        notification = Notification.objects.select_related("organization").filter(public_id=public_id).first()
    if notification is None and event.message_id:
        notification = (Notification.objects.select_related("organization")
                        .filter(channel=Channel.EMAIL, provider_message_id=event.message_id).first())
    if notification is None:
        logger.info("%s tracking event %s for an unknown message", esp_name, event.event_type)
        return
    at = event.timestamp or timezone.now()
    kind = event.event_type
    if kind in ANYMAIL_STATUS:
        detail = event.description or event.mta_response or event.reject_reason or ""
        tracking.record_status(notification, ANYMAIL_STATUS[kind], error=str(detail), at=at)
    if kind == "bounced" or (kind == "rejected" and event.reject_reason in ("bounced", "invalid")):
        rules.suppress(organization=notification.organization, channel=Channel.EMAIL, address=notification.recipient,
                          reason=SuppressionReason.BOUNCED, detail=str(event.description or esp_name))
    elif kind == "complained":
        rules.suppress(organization=notification.organization, channel=Channel.EMAIL, address=notification.recipient,
                          reason=SuppressionReason.COMPLAINED, detail=f"Spam complaint reported by {esp_name}")
    elif kind == "unsubscribed":
        rules.suppress(organization=notification.organization, channel=Channel.EMAIL, address=notification.recipient,
                          reason=SuppressionReason.UNSUBSCRIBED, detail=f"Unsubscribed at {esp_name}")
    elif kind == "opened":
        tracking.count_engagement(notification, opened=True, at=at)
    elif kind == "clicked":
        tracking.count_engagement(notification, clicked=True, at=at)
