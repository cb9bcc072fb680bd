"""The two ways a customer message starts: the recovery engine's attempt, and a team member's "send a new link".

Each applies the respect rules (notifications/rules.py) first and records
either a ``queued`` Notification (composed, then delivered by a worker after
commit: notifications/delivery.py) or a ``suppressed`` one with the reason;
nothing is dropped silently. Quiet hours and the 24-hour cap defer the
attempt (``retry_at``); opt-outs, STOP, bounces and complaints end it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from notifications import channels
from notifications.channels import mask
from notifications.compose import compose, store
from notifications.models import Notification, NotificationStatus, SuppressionReason
from notifications.rules import (
    RespectFacts,
    address_for,
    cap_until,
    customer_zone,
    quiet_hours_end,
    suppression_for,
)
from recovery.messaging import pay_url
from recovery.models import Channel, MessageKind
from tinko import metrics
from tinko.formatting import english


@dataclass
class SendResult:
    sent: bool
    outcome: str
    notification: Notification | None = None
    retry_at: datetime | None = None


def _suppressed(common: dict, *, reason: str, error: str) -> Notification:
    """A ``suppressed`` Notification with the reason, stored (inside compose.stored_together: with the block's)."""
    n = Notification(**common, status=NotificationStatus.SUPPRESSED, reason=reason, error=error)
    store(n, deliver=False)
    return n


def _held_back(*, payment, customer, channel: str, address: str, now, common: dict,
               facts: RespectFacts | None = None) -> SendResult | None:
    """Why the message must not go out now, recorded as a ``suppressed`` Notification; None when it may go.

    Opt-outs, bounces, complaints and missing addresses end it (no ``retry_at``);
    quiet hours and the 24-hour cap say when it may go instead (``retry_at``).
    """
    organization = payment.organization
    if customer is None:
        _suppressed(common, reason=SuppressionReason.NO_ADDRESS, error="The payment has no customer.")
        return SendResult(False, f"The customer can no longer be reached by {channel}.")
    reason, detail, _ = suppression_for(organization=organization, customer=customer, channel=channel,
                                        address=address, now=now, facts=facts)
    if not reason and channel not in channels.enabled_channels():
        reason, detail = SuppressionReason.NO_ADDRESS, f"{channel} is not configured in this deployment."
    if reason:
        n = _suppressed(common, reason=reason, error=detail[:500])
        return SendResult(False, f"The customer can no longer be reached by {channel}: {detail}", n)

    tz = customer_zone(customer, organization)
    quiet_end = quiet_hours_end(now, policy=payment.policy, tz=tz)
    if quiet_end is not None:
        n = _suppressed(common, reason=SuppressionReason.QUIET_HOURS,
                        error=f"Quiet hours in {tz.key} until {quiet_end:%H:%M}.")
        return SendResult(False, f"Deferred: quiet hours in {tz.key}.", n, retry_at=quiet_end)
    capped = cap_until(organization=organization, customer=customer, now=now, facts=facts)
    if capped is not None:
        n = _suppressed(common, reason=SuppressionReason.FREQUENCY_CAP,
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
