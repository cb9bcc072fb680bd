"""Sending messages to customers: choose the copy, respect the customer, record everything.

The recovery runner calls :func:`send_for_attempt` inside its transaction (the
payment row is locked). It either records a ``queued`` Notification (sent by a
worker after commit, :func:`deliver`) or a ``suppressed`` one with the reason;
nothing is dropped silently. Quiet hours and the 24-hour cap defer the attempt
(``retry_at``); opt-outs, STOP, bounces and complaints end it.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from notifications import channels, rendering
from notifications.defaults import default_copy
from notifications.models import (
    MessageTemplate,
    MessagingSettings,
    Notification,
    NotificationStatus,
    Suppression,
    SuppressionReason,
)
from recovery.messaging import pay_url
from recovery.models import Channel, MessageKind
from tinko import crypto, metrics
from tinko.formatting import english

logger = logging.getLogger(__name__)

DEFAULT_QUIET_START, DEFAULT_QUIET_END = time(21, 0), time(8, 0)
CAP_WINDOW = timedelta(hours=24)
MAX_ATTEMPTS = 6
UNSUBSCRIBE_SALT = "tinko.notifications.unsubscribe"
COUNTED = [NotificationStatus.QUEUED, NotificationStatus.SENT, NotificationStatus.DELIVERED]


@dataclass
class SendResult:
    sent: bool
    outcome: str
    notification: Notification | None = None
    retry_at: datetime | None = None


# --- Choosing the copy ---------------------------------------------------------------------------------


def locale_candidates(customer, organization) -> list[str]:
    """The customer's locale (exact, then its language), then the organization's default language."""
    found: list[str] = []
    for raw in ((customer.locale if customer is not None else "") or "", org_default_locale(organization)):
        raw = raw.strip().replace("_", "-")
        for candidate in (raw, raw.split("-")[0].lower()):
            if candidate and candidate not in found:
                found.append(candidate)
    return found or ["en"]


def org_default_locale(organization) -> str:
    own = _settings(organization)
    return (own.default_locale if own is not None else "") or "en"


def choose_copy(*, organization, channel: str, kind: str, locales: list[str]):
    """(copy, locale): the org's template for the first locale that has one, else the shipped default."""
    from notifications.defaults import PHRASES

    templates = {locale: t for (c, k, locale), t in org_templates(organization.pk).items() if c == channel and k == kind}
    for locale in locales:
        if locale in templates:
            return templates[locale], locale
        if locale in PHRASES:
            return default_copy(channel=channel, kind=kind, locale=locale), locale
    return default_copy(channel=channel, kind=kind, locale="en"), "en"


# An organization's templates, per process, for a short while: every message needs them, edits are rare.
# An edit clears this process's copy at once (signals below) and reaches other workers within TEMPLATE_TTL.
TEMPLATE_TTL = 30.0
_templates: dict[int, tuple[float, dict]] = {}


def org_templates(organization_id: int) -> dict:
    import time as time_module

    cached = _templates.get(organization_id)
    if cached is not None and time_module.monotonic() - cached[0] < TEMPLATE_TTL:
        return cached[1]
    found = {(t.channel, t.kind, t.locale): t for t in MessageTemplate.objects.filter(organization_id=organization_id)}
    _templates[organization_id] = (time_module.monotonic(), found)
    return found


def forget_templates(sender=None, instance=None, **kwargs) -> None:
    if instance is not None:
        _templates.pop(instance.organization_id, None)
    else:
        _templates.clear()


# --- Respect rules ---------------------------------------------------------------------------------------


def quiet_hours_end(now: datetime, *, policy, tz: ZoneInfo) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (customer's zone), or None outside them."""
    start = policy.quiet_hours_start if policy is not None else DEFAULT_QUIET_START
    end = policy.quiet_hours_end if policy is not None else DEFAULT_QUIET_END
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(tz)
    t = local.time()
    if start < end:
        if not start <= t < end:
            return None
        return datetime.combine(local.date(), end, tzinfo=tz)
    if t >= start:
        return datetime.combine(local.date() + timedelta(days=1), end, tzinfo=tz)
    if t < end:
        return datetime.combine(local.date(), end, tzinfo=tz)
    return None


def customer_zone(customer, organization) -> ZoneInfo:
    return ZoneInfo((customer.timezone if customer is not None and customer.timezone else "") or organization.timezone)


def address_for(customer, channel: str) -> str:
    if customer is None:
        return ""
    return customer.email if channel == Channel.EMAIL else customer.phone


@dataclass
class RespectFacts:
    """What the respect rules read, read once for several messages (the recovery worker's batch).

    ``stops``: suppression records by (organization id, channel, address);
    ``last_message``: the latest counted message of the last 24 hours by
    (organization id, customer id), kept current as the batch queues messages
    (:meth:`counted`), so two messages to one customer in one batch still meet the cap.
    """

    stops: dict
    last_message: dict

    @classmethod
    def load(cls, messages, *, now) -> RespectFacts:
        """``messages``: (organization, customer, channel, address) of each message to check; two queries in all."""
        from django.db.models import Max

        org_ids = {org.pk for org, _, _, _ in messages}
        addresses = {address for _, _, _, address in messages if address}
        customer_ids = {customer.pk for _, customer, _, _ in messages if customer is not None}
        stops = {}
        if addresses:
            for stop in Suppression.objects.filter(organization_id__in=org_ids, address__in=addresses).only(
                "organization_id", "channel", "address", "reason", "created_at"
            ):
                stops[(stop.organization_id, stop.channel, stop.address)] = stop
        last_message = {}
        if customer_ids:
            rows = (
                Notification.objects.filter(
                    organization_id__in=org_ids, customer_id__in=customer_ids, is_test=False, status__in=COUNTED,
                    created_at__gt=now - CAP_WINDOW,
                ).values("organization_id", "customer_id").annotate(last=Max("created_at"))
            )
            last_message = {(r["organization_id"], r["customer_id"]): r["last"] for r in rows}
        return cls(stops=stops, last_message=last_message)

    def counted(self, notification) -> None:
        """A message was just queued: it counts towards its customer's 24-hour cap."""
        key = (notification.organization_id, notification.customer_id)
        if notification.customer_id is not None and (
            key not in self.last_message or self.last_message[key] < notification.created_at
        ):
            self.last_message[key] = notification.created_at


def suppression_for(*, organization, customer, channel: str, address: str, now,
                    facts: RespectFacts | None = None) -> tuple[str, str, datetime | None]:
    """(reason, detail, retry_at) when a message must not go out now; ("", "", None) when it may."""
    if not address:
        return SuppressionReason.NO_ADDRESS, f"The customer has no address for {channel}.", None
    # The address's own record first: it says why (STOP, bounce…); the customer's flag may only echo it.
    if facts is not None:
        stop = facts.stops.get((organization.pk, channel, address))
    else:
        stop = Suppression.objects.filter(organization=organization, channel=channel, address=address).only(
            "reason", "created_at"
        ).first()
    if stop is not None:
        return stop.reason, f"{english(stop.get_reason_display())} ({stop.created_at:%Y-%m-%d})", None
    if channel in (customer.opted_out_channels or []):
        return SuppressionReason.OPTED_OUT, f"The customer opted out of {channel}.", None
    if channel != Channel.EMAIL and not channels.valid_phone(address):
        return SuppressionReason.INVALID_ADDRESS, f"{address!r} is not a phone number in E.164 form.", None
    return "", "", None


def cap_until(*, organization, customer, now, facts: RespectFacts | None = None) -> datetime | None:
    """When the 24-hour cap lifts for this customer, or None if a message may go now."""
    if facts is not None:
        last = facts.last_message.get((organization.pk, customer.pk))
        return last + CAP_WINDOW if last is not None else None
    last = (
        Notification.objects.filter(
            organization=organization, customer=customer, is_test=False, status__in=COUNTED,
            created_at__gt=now - CAP_WINDOW,
        ).order_by("-created_at").values_list("created_at", flat=True).first()
    )
    return last + CAP_WINDOW if last is not None else None


# --- Sending for the recovery engine ---------------------------------------------------------------------


def _held_back(*, payment, customer, channel: str, address: str, now, common: dict,
               facts: RespectFacts | None = None) -> SendResult | None:
    """Why the message must not go out now, recorded as a ``suppressed`` Notification; None when it may go.

    Opt-outs, bounces, complaints and missing addresses end it (no ``retry_at``);
    quiet hours and the 24-hour cap say when it may go instead (``retry_at``).
    """
    organization = payment.organization
    if customer is None:
        Notification.objects.create(**common, status=NotificationStatus.SUPPRESSED, reason=SuppressionReason.NO_ADDRESS,
                                    error="The payment has no customer.")
        return SendResult(False, f"The customer can no longer be reached by {channel}.")
    reason, detail, _ = suppression_for(organization=organization, customer=customer, channel=channel,
                                        address=address, now=now, facts=facts)
    if not reason and channel not in channels.enabled_channels():
        reason, detail = SuppressionReason.NO_ADDRESS, f"{channel} is not configured in this deployment."
    if reason:
        n = Notification.objects.create(**common, status=NotificationStatus.SUPPRESSED, reason=reason, error=detail[:500])
        return SendResult(False, f"The customer can no longer be reached by {channel}: {detail}", n)

    tz = customer_zone(customer, organization)
    quiet_end = quiet_hours_end(now, policy=payment.policy, tz=tz)
    if quiet_end is not None:
        n = Notification.objects.create(**common, status=NotificationStatus.SUPPRESSED,
                                        reason=SuppressionReason.QUIET_HOURS,
                                        error=f"Quiet hours in {tz.key} until {quiet_end:%H:%M}.")
        return SendResult(False, f"Deferred: quiet hours in {tz.key}.", n, retry_at=quiet_end)
    capped = cap_until(organization=organization, customer=customer, now=now, facts=facts)
    if capped is not None:
        n = Notification.objects.create(**common, status=NotificationStatus.SUPPRESSED,
                                        reason=SuppressionReason.FREQUENCY_CAP,
                                        error=f"The customer had a message in the last 24 hours; next at {capped:%Y-%m-%d %H:%M} UTC.")
        return SendResult(False, "Deferred: at most one message per customer in 24 hours.", n, retry_at=capped)

    return None


def send_for_attempt(*, payment, attempt, now, facts: RespectFacts | None = None) -> SendResult:
    """Record the attempt's message (queued, or suppressed with the reason). The caller holds the payment's lock.

    Reuses the payment's live pay link (its expiry extended) or makes one, only for a
    message that goes out; never revokes a link. Must not move money.
    ``facts``: the respect rules' reads, made once for a batch (:class:`RespectFacts`); read here when None.
    """
    from recovery.services import link_for_message

    organization = payment.organization
    customer = payment.customer
    channel = attempt.channel
    kind = attempt.message_kind or MessageKind.FIRST_NOTICE
    address = address_for(customer, channel)
    common = dict(organization=organization, payment=payment, attempt=attempt, customer=customer, channel=channel,
                  kind=kind, recipient=address, created_at=now, updated_at=now)

    held = _held_back(payment=payment, customer=customer, channel=channel, address=address, now=now, common=common,
                      facts=facts)
    if held is not None:
        metrics.notification(channel, "deferred" if held.retry_at else "suppressed")
        return held

    # The payment's one live link, its expiry extended: earlier messages' links keep working.
    link, token = link_for_message(payment=payment, now=now)
    attempt.link = link
    n = compose(
        organization=organization, channel=channel, kind=kind, customer=customer, payment=payment,
        pay_url=pay_url(token), expires_at=link.expires_at, recipient=address, now=now,
        extra={"attempt": attempt, "link": link},
    )
    if facts is not None:
        facts.counted(n)
    what = {Channel.EMAIL: "E-mail", Channel.SMS: "SMS", Channel.WHATSAPP: "WhatsApp message"}[channel]
    return SendResult(True, f"{what} ({english(n.get_kind_display()).lower()}, {n.locale}) queued to {mask(address)}.", n)


def send_link(*, payment, link, token: str, channel: str = Channel.EMAIL, now=None) -> SendResult:
    """Message a pay link a team member made by hand (console: "send a new link"). The caller holds the payment's lock.

    The same respect rules as the engine's messages (opt-outs, quiet hours, the
    24-hour cap); when one holds the message back it is recorded as
    ``suppressed`` and the member is told why (the link still works: they may
    share it themselves). The copy fits the decline: authenticate, or pay.
    """
    now = now or timezone.now()
    customer = payment.customer
    kind = MessageKind.AUTHENTICATION_NEEDED if payment.category == "authentication_required" else MessageKind.REMINDER
    address = address_for(customer, channel) if customer is not None else ""
    common = dict(organization=payment.organization, payment=payment, customer=customer, channel=channel, kind=kind,
                  recipient=address, link=link, created_at=now, updated_at=now)
    held = _held_back(payment=payment, customer=customer, channel=channel, address=address, now=now, common=common)
    if held is not None:
        metrics.notification(channel, "deferred" if held.retry_at else "suppressed")
        why = held.notification.error if held.notification is not None else held.outcome
        return SendResult(False, f"Not sent: {why.rstrip('.')}. The link still works; you may share it yourself.",
                          held.notification)
    n = compose(
        organization=payment.organization, channel=channel, kind=kind, customer=customer, payment=payment,
        pay_url=pay_url(token), expires_at=link.expires_at, recipient=address, now=now, extra={"link": link},
    )
    return SendResult(True, f"Link sent by {english(n.get_channel_display())} to {mask(address)}.", n)


def mask(address: str) -> str:
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}…@{domain}"
    return f"…{address[-4:]}" if address else ""


def compose(*, organization, channel, kind, customer, payment, pay_url, expires_at, recipient, now,
            category: str = "", amount=None, currency=None, is_test=False, extra=None) -> Notification:
    """Render the message and store it ``queued``; a worker sends it after commit."""
    locales = locale_candidates(customer, organization)
    copy, locale = choose_copy(organization=organization, channel=channel, kind=kind, locales=locales)
    context = rendering.build_context(
        organization=organization, customer=customer, payment=payment, amount=amount, currency=currency,
        pay_url=pay_url, expires_at=expires_at, locale=locale, category=category,
    )
    notification = Notification(
        organization=organization, payment=payment, customer=customer, channel=channel, kind=kind, locale=locale,
        recipient=recipient, sender=sender_for(organization, channel), is_test=is_test, created_at=now, updated_at=now,
        **(extra or {}),
    )
    unsubscribe = unsubscribe_url(notification) if channel == Channel.EMAIL else ""
    pixel = settings.SITE_URL + reverse("notifications:open", args=[notification.public_id]) if channel == Channel.EMAIL else ""
    try:
        rendered = rendering.render_message(copy=copy, channel=channel, context=context, unsubscribe_url=unsubscribe,
                                            open_pixel_url=pixel, locale=locale)
    except rendering.TemplateProblem as exc:
        # Saved templates are checked in the editor; a template broken since (a variable
        # removed) must not stop the recovery: the shipped copy goes out instead.
        logger.warning("Template %s/%s/%s unusable, sending the default: %s", channel, kind, locale, exc)
        rendered = rendering.render_message(copy=default_copy(channel=channel, kind=kind, locale="en"), channel=channel,
                                            context=context, unsubscribe_url=unsubscribe, open_pixel_url=pixel,
                                            locale=locale)
    notification.subject = rendered.subject[:300]
    notification.text_encrypted = crypto.encrypt(rendered.text)
    notification.html_encrypted = crypto.encrypt(rendered.html) if rendered.html else ""
    notification.pay_url_encrypted = crypto.encrypt(pay_url)
    notification.segments = rendered.segments
    notification.save()
    enqueue_delivery(notification.pk)
    return notification


def sender_for(organization, channel: str) -> str:
    if channel == Channel.EMAIL:
        return f"{_header_safe(organization.brand_name)} <{settings.NOTIFICATIONS_FROM_EMAIL}>"
    if channel == Channel.WHATSAPP:
        own = getattr(_settings(organization), "whatsapp_from", "")
        return own or settings.TWILIO_WHATSAPP_FROM
    return settings.TWILIO_SMS_FROM


def _header_safe(name: str) -> str:
    return " ".join(name.replace('"', "").replace("<", "").replace(">", "").split())


def _settings(organization):
    """The org's MessagingSettings or None, read once per organization object (a miss is remembered too),
    and kept in this process for TEMPLATE_TTL like the templates (an edit clears it at once here)."""
    if not hasattr(organization, "_tinko_messaging_settings"):
        import time as time_module

        cached = _messaging_settings.get(organization.pk)
        if cached is not None and time_module.monotonic() - cached[0] < TEMPLATE_TTL:
            found = cached[1]
        else:
            found = MessagingSettings.objects.filter(organization=organization).first()
            _messaging_settings[organization.pk] = (time_module.monotonic(), found)
        organization._tinko_messaging_settings = found
    return organization._tinko_messaging_settings


_messaging_settings: dict[int, tuple[float, object]] = {}


def forget_messaging_settings(sender=None, instance=None, **kwargs) -> None:
    if instance is not None:
        _messaging_settings.pop(instance.organization_id, None)
    else:
        _messaging_settings.clear()


def unsubscribe_url(notification) -> str:
    token = signing.Signer(salt=UNSUBSCRIBE_SALT).sign(notification.public_id)
    return settings.SITE_URL + reverse("notifications:unsubscribe", args=[token])


def enqueue_delivery(notification_id: int) -> None:
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


# --- Test messages from the editor ----------------------------------------------------------------------


def send_test(*, organization, channel: str, kind: str, locale: str, recipient: str, copy, user) -> Notification:
    """Send ``copy`` with sample data to ``recipient`` (the user's own address); recorded as a test in the Outbox."""
    now = timezone.now()
    context = sample_context(organization, locale=locale)
    notification = Notification(
        organization=organization, channel=channel, kind=kind, locale=locale, recipient=recipient,
        sender=sender_for(organization, channel), is_test=True, created_at=now, updated_at=now,
    )
    rendered = rendering.render_message(copy=copy, channel=channel, context=context, locale=locale)
    notification.subject = rendered.subject[:300]
    notification.text_encrypted = crypto.encrypt(rendered.text)
    notification.html_encrypted = crypto.encrypt(rendered.html) if rendered.html else ""
    notification.pay_url_encrypted = crypto.encrypt(context["pay_url"])
    notification.segments = rendered.segments
    notification.save()
    enqueue_delivery(notification.pk)
    from tinko.services import record_audit

    record_audit(organization=organization, action="template.test_sent", actor=user, target=notification,
                 data={"channel": channel, "kind": kind, "locale": locale, "to": mask(recipient)})
    return notification


def sample_context(organization, *, locale: str, category: str = "expired_card") -> dict:
    from types import SimpleNamespace

    payment = SimpleNamespace(amount=4999, currency=organization.default_currency, card_brand="visa", card_last4="4242",
                              category=category)
    customer = SimpleNamespace(name="Ada Lovelace", timezone="", locale=locale)
    return rendering.build_context(
        organization=organization, customer=customer, payment=payment, pay_url=f"{settings.SITE_URL}/pay/example/",
        expires_at=timezone.now() + timedelta(hours=48), locale=locale,
    )


# --- Delivery (the worker) ---------------------------------------------------------------------------


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
            notification_event(n, "notification.failed")
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
                notification_event(n, "notification.failed")
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
    own = _settings(n.organization)
    sid = (own.whatsapp_content_sids or {}).get(n.kind, "") if own is not None else ""
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


# --- Status from the providers --------------------------------------------------------------------

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


# --- Opt-outs ------------------------------------------------------------------------------------------


@transaction.atomic
def suppress(*, organization, channel: str, address: str, reason: str, detail: str = "") -> Suppression:
    """Stop messaging ``address`` on ``channel`` for this organization, and mark its customers opted out."""
    from recovery.models import Customer

    suppression, created = Suppression.objects.get_or_create(
        organization=organization, channel=channel, address=address, defaults={"reason": reason, "detail": detail[:300]}
    )
    if not created and suppression.reason != reason:
        suppression.reason, suppression.detail = reason, detail[:300]
        suppression.save(update_fields=["reason", "detail"])
    field = "email" if channel == Channel.EMAIL else "phone"
    for customer in Customer.objects.select_for_update().filter(organization=organization, **{field: address}):
        if channel not in (customer.opted_out_channels or []):
            customer.opted_out_channels = [*(customer.opted_out_channels or []), channel]
            customer.updated_at = timezone.now()
            customer.save(update_fields=["opted_out_channels", "updated_at"])
    return suppression


@transaction.atomic
def resubscribe(*, organization, channel: str, address: str) -> bool:
    """The customer asked for messages again (START): lift a STOP or unsubscribe (not a bounce or complaint)."""
    from recovery.models import Customer

    deleted, _ = Suppression.objects.filter(
        organization=organization, channel=channel, address=address,
        reason__in=[SuppressionReason.STOP, SuppressionReason.UNSUBSCRIBED],
    ).delete()
    field = "email" if channel == Channel.EMAIL else "phone"
    for customer in Customer.objects.select_for_update().filter(organization=organization, **{field: address}):
        if channel in (customer.opted_out_channels or []):
            customer.opted_out_channels = [c for c in customer.opted_out_channels if c != channel]
            customer.save(update_fields=["opted_out_channels"])
    return bool(deleted)


def notification_for_unsubscribe(token: str) -> Notification | None:
    try:
        public_id = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    except signing.BadSignature:
        return None
    return Notification.objects.select_related("organization").filter(public_id=public_id).first()
