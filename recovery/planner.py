"""The planner: from policy + classification + history, the next step of a recovery.

A pure function of its inputs (no queries): ingestion and the attempt runner
load the history in bulk (:func:`recovery.history.load`) and save what the plan
says. Every decision carries a plain-language ``reason`` so that a merchant can
see why Tinko did what it did, or why it did nothing.

Card-network rules (../reference: Visa and Mastercard sections):
- no reattempt at all after a Visa category-1 code or Mastercard MAC 03/21
  (the classifier marks these ``network_stop``);
- at most 15 automatic reattempts per card + amount + currency in 30 days
  (Visa's rule; applied to every card because it is the strictest common cap);
- at most 10 automatic attempts per Mastercard card in 24 hours;
- MAC 24–30 set the earliest retry (the classifier's ``min_delay``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from payments.models import Channel, PaymentStatus
from recovery.models import Action, AttemptKind, Category, MessageKind
from recovery.payday import NO_TIMING, CustomerTiming, message_time, payday_for
from tinko.formatting import english

VISA_WINDOW = timedelta(days=30)
VISA_LIMIT = 15
MASTERCARD_WINDOW = timedelta(hours=24)
MASTERCARD_LIMIT = 10
# Salaries land overnight; a payday retry goes out mid-morning local time.
PAYDAY_TIME = time(10, 0)

HOLDOUT_REASON = (
    "Held out: chosen at random for the retry policy's holdout group, which gets no recovery actions so that "
    "the dashboard can compare recovery with Tinko against doing nothing."
)

CATEGORY_LABELS = {category.value: english(category.label).lower() for category in Category}

CUSTOMER_MESSAGE_KIND = {
    Category.AUTHENTICATION_REQUIRED: MessageKind.AUTHENTICATION_NEEDED,
}


@dataclass
class CardHistory:
    """Automatic attempts already made or scheduled for one card: (amount, currency, when)."""

    attempts: list[tuple[int, str, datetime]] = field(default_factory=list)


@dataclass
class PaymentHistory:
    auto_attempts: int = 0  # automatic re-charges made or scheduled (not cancelled/skipped)
    notifications: int = 0  # messages sent or scheduled
    last_notification_at: datetime | None = None
    last_sequence: int = 0
    busy: bool = False  # an attempt is queued or running: its outcome decides what comes next


@dataclass
class PlannedAttempt:
    kind: str
    channel: str
    scheduled_for: datetime
    reason: str
    message_kind: str = ""


@dataclass
class Plan:
    attempt: PlannedAttempt | None
    status: str
    reason: str


@dataclass
class Effective:
    max_retries: int
    initial_delay: timedelta
    multiplier: Decimal
    max_delay: timedelta


def effective_settings(policy, category: str) -> Effective:
    """The policy's retry settings with the category's override applied."""
    override = (policy.category_overrides or {}).get(category, {})
    return Effective(
        max_retries=int(override.get("max_retries", policy.max_retries)),
        initial_delay=timedelta(seconds=int(override.get("initial_delay_seconds", policy.initial_delay_seconds))),
        multiplier=Decimal(str(override.get("backoff_multiplier", policy.backoff_multiplier))),
        max_delay=timedelta(seconds=int(override.get("max_delay_seconds", policy.max_delay_seconds))),
    )


def humanize(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        n, unit = max(1, round(seconds / 60)), "minute"
    elif seconds < 2 * 86400 and seconds % 86400:
        n, unit = round(seconds / 3600), "hour"
    else:
        n, unit = round(seconds / 86400), "day"
    return f"{n} {unit}{'' if n == 1 else 's'}"


def outside_quiet_hours(when: datetime, policy, tz: ZoneInfo) -> tuple[datetime, bool]:
    """Move ``when`` to the end of the policy's quiet hours if it falls inside them."""
    start, end = policy.quiet_hours_start, policy.quiet_hours_end
    if start is None or end is None or start == end:
        return when, False
    local = when.astimezone(tz)
    t = local.time()
    if start < end:
        inside = start <= t < end
        end_date = local.date()
    else:  # wraps midnight, e.g. 21:00–08:00
        inside = t >= start or t < end
        end_date = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return when, False
    return datetime.combine(end_date, end, tzinfo=tz), True


def next_payday(when: datetime, paydays: list[int], tz: ZoneInfo) -> datetime | None:
    """The first payday on or after ``when`` (local), at PAYDAY_TIME; day 31 means the month's last day."""
    if not paydays:
        return None
    local = when.astimezone(tz)
    year, month = local.year, local.month
    for _ in range(3):
        last = calendar.monthrange(year, month)[1]
        for day in sorted({min(d, last) for d in paydays}):
            candidate = datetime(year, month, day, PAYDAY_TIME.hour, PAYDAY_TIME.minute, tzinfo=tz)
            if candidate.date() == local.date():
                return max(candidate, local)
            if candidate > local:
                return candidate
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return None


def check_network_limits(
    *, card_brand: str, card: CardHistory, amount: int, currency: str, when: datetime
) -> tuple[datetime | None, str]:
    """(the earliest allowed time at or after ``when``, or None if no automatic attempt is allowed; why)."""
    same_amount = [t for a, c, t in card.attempts if a == amount and c == currency and t > when - VISA_WINDOW]
    if len(same_amount) >= VISA_LIMIT:
        return None, (
            f"card-network limit: at most {VISA_LIMIT} automatic reattempts per card and amount in 30 days "
            f"(Visa rule, applied to every card); {len(same_amount)} already made or scheduled"
        )
    note = ""
    if card_brand == "mastercard":
        recent = sorted(t for _, _, t in card.attempts if when - MASTERCARD_WINDOW < t <= when)
        if len(recent) >= MASTERCARD_LIMIT:
            # The window has room again once the oldest of the last ten leaves it.
            when = recent[-MASTERCARD_LIMIT] + MASTERCARD_WINDOW
            note = (
                f"moved to {when:%Y-%m-%d %H:%M} UTC: Mastercard allows at most {MASTERCARD_LIMIT} "
                "automatic attempts per card in 24 hours"
            )
    return when, note


def plan_next(
    *,
    payment,
    policy,
    classification,
    history: PaymentHistory,
    card: CardHistory,
    channels: list[str],
    can_recharge: tuple[bool, str],
    tz: ZoneInfo,
    now: datetime,
    timing: CustomerTiming = NO_TIMING,
) -> Plan:
    """Decide the next attempt for ``payment``.

    ``channels`` are the message channels that can reach this customer now, in
    the policy's order (contact known, not opted out, a sender configured);
    ``can_recharge`` is (whether a provider can re-charge off-session, why not);
    ``timing`` is what the customer's own history says about their payday and
    the hour they read messages (:mod:`recovery.payday`).
    Must not touch the database.
    """
    if payment.status in (PaymentStatus.RECOVERED, PaymentStatus.CANCELLED):
        return Plan(None, payment.status, f"The payment is already {payment.status}; nothing more to do.")
    window_end = payment.recovery_ends_at
    if window_end is not None and now >= window_end:
        return Plan(None, PaymentStatus.EXHAUSTED, f"The {policy.recovery_window_days}-day recovery window has ended.")
    if getattr(payment, "holdout_group", "") == "holdout":
        # The control group of the policy's incrementality experiment: no re-charge, no message.
        return Plan(None, PaymentStatus.FAILED, HOLDOUT_REASON)

    category_label = CATEGORY_LABELS.get(classification.category, classification.category)
    notes: list[str] = []

    if classification.action == Action.AUTO_RETRY and not classification.network_stop:
        plan = _plan_retry(
            payment=payment, policy=policy, classification=classification, history=history, card=card,
            can_recharge=can_recharge, tz=tz, now=now, category_label=category_label, notes=notes, timing=timing,
        )
        if plan is not None:
            return plan
    elif classification.network_stop:
        notes.append("the card network forbids any automatic reattempt")

    wants_message = classification.action in (Action.AUTO_RETRY, Action.CUSTOMER_ACTION) or (
        classification.category == Category.DO_NOT_RETRY and policy.notify_on_hard_decline
    )
    if not wants_message:
        reason = _sentence(f"No further action: {classification.reason.rstrip('.')}", notes)
        status = PaymentStatus.EXHAUSTED if history.auto_attempts or history.notifications else PaymentStatus.FAILED
        return Plan(None, status, reason)

    max_messages = 1 if classification.action == Action.STOP else policy.max_notifications
    if history.notifications >= max_messages:
        reason = _sentence(
            f"All {max_messages} message{'s' if max_messages != 1 else ''} sent; the pay link stays open until the "
            "recovery window ends",
            notes,
        )
        return Plan(None, PaymentStatus.RECOVERING, reason)
    if not channels:
        reason = _sentence("No way to reach the customer: no contact on an enabled channel", notes)
        status = PaymentStatus.EXHAUSTED if history.auto_attempts or history.notifications else PaymentStatus.FAILED
        return Plan(None, status, reason)

    n = history.notifications
    channel = channels[n % len(channels)]
    when = now
    if history.last_notification_at is not None:
        when = max(now, history.last_notification_at + timedelta(seconds=policy.notification_interval_seconds))
    when, held = message_time(when, timing=timing, tz=tz)
    when, moved = outside_quiet_hours(when, policy, tz)
    if window_end is not None and when >= window_end:
        return Plan(None, PaymentStatus.RECOVERING, _sentence("No further message fits in the recovery window", notes))

    if n == 0:
        kind = CUSTOMER_MESSAGE_KIND.get(classification.category, MessageKind.FIRST_NOTICE)
    elif n == max_messages - 1:
        kind = MessageKind.FINAL_NOTICE
    else:
        kind = MessageKind.REMINDER
    parts = [f"message {n + 1} of {max_messages} by {english(Channel(channel).label)}: {category_label}"]
    if classification.action == Action.CUSTOMER_ACTION:
        parts.append("the customer must act")
    parts.extend(notes)
    if n:
        parts.append(f"{humanize(timedelta(seconds=policy.notification_interval_seconds))} after the last message")
    if held:
        parts.append(held)
    if moved:
        parts.append(f"outside quiet hours in {tz.key}")
    reason = "; ".join(parts[:1]) + (", " + ", ".join(parts[1:]) if parts[1:] else "")
    return Plan(
        PlannedAttempt(AttemptKind.NOTIFICATION, channel, when, _cap(reason), kind), PaymentStatus.RECOVERING, reason
    )


def _plan_retry(*, payment, policy, classification, history, card, can_recharge, tz, now, category_label, notes, timing):
    possible, why_not = can_recharge
    if not possible:
        notes.append(why_not[0].lower() + why_not[1:].rstrip("."))
        return None
    settings = effective_settings(policy, classification.category)
    done = history.auto_attempts
    if done >= settings.max_retries:
        notes.append(f"automatic retries used up ({done} of {settings.max_retries})")
        return None
    delay = settings.initial_delay * float(settings.multiplier**done)
    delay = min(delay, settings.max_delay)
    parts = [f"retry {done + 1} of {settings.max_retries}: {category_label}"]
    if classification.min_delay and classification.min_delay > delay:
        delay = classification.min_delay
        parts.append(f"the issuer asked to wait at least {humanize(delay)}")
    else:
        parts.append(f"after {humanize(delay)}")
    when = now + delay
    if policy.payday_alignment and classification.category == Category.INSUFFICIENT_FUNDS:
        payday, basis = payday_for(
            when, timing=timing, policy_days=policy.payday_days, at=PAYDAY_TIME, tz=tz, next_payday=next_payday
        )
        if payday is not None and (payment.recovery_ends_at is None or payday < payment.recovery_ends_at):
            if payday.date() != when.astimezone(tz).date():
                parts.append(f"aligned to {basis}")
            when = payday
    when, moved = outside_quiet_hours(when, policy, tz)
    if moved:
        parts.append(f"outside quiet hours in {tz.key}")
    allowed, note = check_network_limits(
        card_brand=payment.card_brand, card=card, amount=payment.amount, currency=payment.currency, when=when
    )
    if allowed is None:
        notes.append(note)
        return None
    if note:
        when = allowed
        parts.append(note)
    if payment.recovery_ends_at is not None and when >= payment.recovery_ends_at:
        notes.append("the next automatic retry would fall after the recovery window ends")
        return None
    reason = parts[0] + ", " + ", ".join(parts[1:])
    return Plan(
        PlannedAttempt(AttemptKind.AUTO_RETRY, Channel.PSP, when, _cap(reason)), PaymentStatus.RECOVERING, reason
    )


def _sentence(head: str, notes: list[str]) -> str:
    return _cap(head + (" (" + "; ".join(notes) + ")" if notes else "") + ".")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
