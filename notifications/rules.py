"""Respect rules: whether a customer may be messaged now, and the records that say they may not.

Opt-outs, STOP, bounces, complaints and missing or invalid addresses end a
message (suppressed, with the reason); quiet hours in the customer's zone and
the 24-hour cap defer it (the recovery engine plans it again at ``retry_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifications.models import Notification, NotificationStatus, Suppression, SuppressionReason
from recovery.models import Channel
from tinko import phones
from tinko.formatting import english

DEFAULT_QUIET_START, DEFAULT_QUIET_END = time(21, 0), time(8, 0)
CAP_WINDOW = timedelta(hours=24)
UNSUBSCRIBE_SALT = "tinko.notifications.unsubscribe"
# Messages that count towards the 24-hour cap.
COUNTED = [NotificationStatus.QUEUED, NotificationStatus.SENT, NotificationStatus.DELIVERED]


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
    if channel != Channel.EMAIL and not phones.is_e164(address):
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


def unsubscribe_url(notification) -> str:
    token = signing.Signer(salt=UNSUBSCRIBE_SALT).sign(notification.public_id)
    return settings.SITE_URL + reverse("notifications:unsubscribe", args=[token])


def notification_for_unsubscribe(token: str) -> Notification | None:
    try:
        public_id = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    except signing.BadSignature:
        return None
    return Notification.objects.select_related("organization").filter(public_id=public_id).first()
