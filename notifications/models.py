"""Messages to customers (e-mail, SMS, WhatsApp), the templates they are rendered from, the
addresses that must not be contacted, and signed webhooks to merchants.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from recovery.models import Channel, MessageKind
from tinko.models import Organization

# The channels a message goes out on (Channel.PSP is a re-charge, not a message).
MESSAGE_CHANNELS = [(Channel.EMAIL.value, _("Email")), (Channel.SMS.value, _("SMS")), (Channel.WHATSAPP.value, _("WhatsApp"))]

# Locales Tinko ships default copy in; a merchant may add templates for others.
SHIPPED_LOCALES = ["en", "hi", "es"]


class MessageTemplate(models.Model):
    """A merchant's own copy for one channel, kind and locale; without one the shipped default is used.

    Rendered with Django's template language from the fixed context documented in
    notifications/rendering.py. E-mail uses subject, text and HTML (the HTML body
    sits inside Tinko's branded layout, which adds the call-to-action button);
    SMS and WhatsApp use the text only.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="message_templates")
    channel = models.CharField(max_length=10, choices=MESSAGE_CHANNELS)
    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    locale = models.CharField(max_length=35)
    subject = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    html = models.TextField(blank=True)
    button_label = models.CharField(max_length=80, blank=True)
    updated_at = models.DateTimeField(default=now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "channel", "kind", "locale"], name="message_template_unique"),
        ]

    def __str__(self):
        return f"{self.channel} {self.kind} ({self.locale})"


class MessagingSettings(models.Model):
    """Per-organization senders: WhatsApp sender and its approved Content template ids per kind."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="messaging_settings")
    # E.164 number registered as a WhatsApp sender; blank: the deployment's TWILIO_WHATSAPP_FROM.
    whatsapp_from = models.CharField(max_length=16, blank=True)
    # {kind: "HX…"}: Twilio Content SIDs of templates WhatsApp approved. Business-initiated
    # WhatsApp messages must use one; without it for a kind, the text is sent (works only
    # inside the 24-hour customer-service window or in the sandbox).
    whatsapp_content_sids = models.JSONField(default=dict, blank=True)
    # Language of messages to customers whose own locale is unknown.
    default_locale = models.CharField(max_length=35, default="en")
    updated_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "messaging settings"


class NotificationStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    BOUNCED = "bounced", _("Bounced")
    SUPPRESSED = "suppressed", _("Suppressed")


class SuppressionReason(models.TextChoices):
    QUIET_HOURS = "quiet_hours", _("Quiet hours")
    FREQUENCY_CAP = "frequency_cap", _("At most one message per 24 hours")
    OPTED_OUT = "opted_out", _("Opted out")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    STOP = "stop", _("Replied STOP")
    BOUNCED = "bounced", _("Address bounced")
    COMPLAINED = "complained", _("Marked as spam")
    NO_ADDRESS = "no_address", _("No address on this channel")
    INVALID_ADDRESS = "invalid_address", _("Invalid address")


def new_public_id() -> str:
    return secrets.token_urlsafe(12)


class Notification(models.Model):
    """One outbound message: ``queued → sent → delivered | failed | bounced``, or ``suppressed`` (with the reason).

    A queued message is sent and, after an outage, tried again by its own row
    (``next_attempt_at``, ``attempts``, ``error``: notifications/delivery.py).

    The rendered content is kept encrypted (it carries the pay link's token) so
    that the Outbox can show exactly what the customer received.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="notifications")
    payment = models.ForeignKey("recovery.Payment", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    attempt = models.ForeignKey(
        "recovery.RecoveryAttempt", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications",
        db_index=False,
    )
    customer = models.ForeignKey(
        "recovery.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications", db_index=False
    )
    # Indexed: opening a pay link counts a click on the message that carried it.
    link = models.ForeignKey("recovery.RecoveryLink", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    public_id = models.CharField(max_length=20, unique=True, default=new_public_id, editable=False)
    channel = models.CharField(max_length=10, choices=MESSAGE_CHANNELS)
    kind = models.CharField(max_length=24, choices=MessageKind.choices, blank=True)
    locale = models.CharField(max_length=35, blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    sender = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    text_encrypted = models.TextField(blank=True)
    html_encrypted = models.TextField(blank=True)
    pay_url_encrypted = models.TextField(blank=True)
    segments = models.PositiveSmallIntegerField(null=True, blank=True)
    is_test = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.QUEUED)
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices, blank=True)
    error = models.CharField(max_length=500, blank=True)
    provider = models.CharField(max_length=30, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A queued message is due at next_attempt_at (its first send or its next try after an outage); while a
    # worker sends it, sending_until is that worker's lease (notifications/delivery.py). Both empty once done.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sending_until = models.DateTimeField(null=True, blank=True)
    opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="notification_org_created"),
            models.Index(fields=["payment", "created_at"], name="notification_payment"),
            # The 24-hour cap: what this customer was sent lately.
            models.Index(fields=["customer", "-created_at"], name="notification_customer"),
            models.Index(fields=["provider_message_id"], name="notification_provider_id", condition=~Q(provider_message_id="")),
            # The scheduler's sweep: queued messages whose time has come.
            models.Index(fields=["next_attempt_at"], name="notification_due", condition=Q(status="queued")),
        ]

    def __str__(self):
        return f"{self.channel} to {self.recipient} ({self.status})"


class Suppression(models.Model):
    """An address this organization must not message on a channel, and why (unsubscribe, STOP, bounce, complaint)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="suppressions")
    channel = models.CharField(max_length=10, choices=MESSAGE_CHANNELS)
    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "channel", "address"], name="suppression_unique"),
        ]

    def __str__(self):
        return f"{self.channel} {self.address}: {self.reason}"


# --- Webhooks to merchants ---------------------------------------------------------------------


class WebhookEventType(models.TextChoices):
    RECOVERY_STARTED = "payment.recovery_started", _("A recovery started")
    ATTEMPT_SUCCEEDED = "attempt.succeeded", _("An automatic re-charge succeeded")
    ATTEMPT_FAILED = "attempt.failed", _("An automatic re-charge was declined")
    RECOVERED = "payment.recovered", _("A payment was recovered")
    EXHAUSTED = "payment.exhausted", _("A recovery ended without payment")
    DOUBLE_PAYMENT = "payment.possible_double_payment", _("A recovered payment was paid again (possible double payment)")
    NOTIFICATION_DELIVERED = "notification.delivered", _("A message was delivered")
    NOTIFICATION_FAILED = "notification.failed", _("A message failed or bounced")
    TEST = "webhook.test", _("Test event (sent from the console)")


def new_webhook_secret() -> str:
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(models.Model):
    """A merchant's URL that receives signed events (Standard Webhooks). The secret is shown once."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    # Event types to send; empty: all of them.
    events = models.JSONField(default=list, blank=True)
    secret_encrypted = models.TextField()
    is_active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["organization", "is_active"], name="webhook_endpoint_org_active")]

    def __str__(self):
        return self.url

    def wants(self, event_type: str) -> bool:
        return event_type == WebhookEventType.TEST or not self.events or event_type in self.events


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


class WebhookMessage(models.Model):
    """One event for an organization; its ``msg_id`` is the ``webhook-id`` receivers deduplicate on."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_messages")
    msg_id = models.CharField(max_length=40, unique=True, default=new_message_id)
    event_type = models.CharField(max_length=40)
    payment = models.ForeignKey("recovery.Payment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                db_index=False)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["payment"], name="webhook_message_payment", condition=Q(payment__isnull=False))]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class WebhookDelivery(models.Model):
    """One message to one endpoint, tried on the retry schedule until it succeeds or runs out."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_response = models.CharField(max_length=1000, blank=True)
    # [{"at": iso, "status_code": n|None, "error": str, "ms": n}], oldest first.
    log = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(status="pending")),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]
