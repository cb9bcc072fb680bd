"""The planner: from policy + classification + history, the next step of a recovery.

The decisions are pure functions of their inputs (no queries); recovery/planning.py
(``plan_payments``) reads and writes around them for ingestion and the attempt
runner: it cancels what was scheduled, loads the histories in bulk
(recovery/history.py), asks the PSP port which payments can be re-charged
(recovery/psp.py) and saves the attempts the plans say. Every decision carries
a plain-language ``reason`` so that a merchant can
see why Tinko did what it did, or why it did nothing.

The policy model (recovery/steps.py has the shape and its checks)
-------------------------------------------------------------------
``policy.steps`` maps a *step key* to an ordered list of steps::

    {"insufficient_funds": [{"action": "recharge", "after_seconds": 86400},
                            {"action": "message", "after_seconds": 0, "channel": ""}, ...],
     "lost_or_stolen": [{"action": "message", "after_seconds": 0, "channel": ""}], ...}

The step key is the decline's category (:func:`step_key`), except that a
``fraud_or_stolen`` decline whose code says the card was lost, stolen or must
be picked up is ``lost_or_stolen``: the networks forbid a re-charge, not a
message asking for another card. Fraud itself never gets anything, whatever
the policy says. The rest of the policy is shared by every key: ``channels``
(in order), quiet hours, paydays, the recovery window, the holdout.

Which step comes next: the steps are walked in order; each ``recharge`` step is
covered by one automatic re-charge already made or scheduled
(``history.auto_attempts``), each ``message`` step by one message
(``history.notifications``), so a payment whose decline category changes
mid-way continues where the new category's list has work left. The first
uncovered step is planned ``after_seconds`` after the previous step
(``history.last_step_at``) or the latest failure (``payment.last_failed_at``),
whichever is later, and never before ``now``. A step that cannot run (no way to
re-charge, a network stop or limit, no channel reaches the customer, it would
fall after the window ends) is passed over and the reason says why; the next
step is tried.

The API (all pure; ``payment``, ``policy``, ``classification`` are duck-typed
objects: a model instance, or a ``SimpleNamespace`` in the simulator)
------------------------------------------------------------------------------
- :func:`plan_next` (payment, policy, classification, history, card, channels,
  can_recharge, tz, now) → :class:`Plan`: the next attempt after a failure or a
  finished step, or none and the payment's status with the reason.
  ``payment`` needs ``status``, ``recovery_ends_at``, ``last_failed_at``,
  ``card_brand``, ``amount``, ``currency`` (``holdout_group`` optional);
  ``classification`` needs ``category``, ``action``, ``network_stop``,
  ``min_delay``, ``reason`` (``decline_code``/``network_decline_code`` tell lost
  or stolen cards from fraud).
- :func:`plan_retry_now` → a re-charge a person or the API asked for: quiet
  hours are moved out of unless a person overrides them (and the reason says so).
- :func:`plan_card_changed` → a re-charge with a new card (card updater, the
  customer's new card): quiet hours, network limits and the window apply.
- :func:`step_key`, :func:`check_network_limits`, :func:`outside_quiet_hours`,
  :func:`next_payday` are the building blocks.

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
from zoneinfo import ZoneInfo

from recovery import steps as policy_steps
from recovery.models import (
    Action,
    AttemptKind,
    Category,
    Channel,
    MessageKind,
    NetworkLimit,
    PaymentStatus,
)
from recovery.payday import NO_TIMING, CustomerTiming, message_time, payday_for
from tinko.formatting import english

VISA_WINDOW = timedelta(days=30)
VISA_LIMIT = 15
MASTERCARD_WINDOW = timedelta(hours=24)
MASTERCARD_LIMIT = 10
# Tinko plans no re-charge of its own this close to the PSP's own automatic retry of the same debt.
PSP_RETRY_GAP = timedelta(hours=24)
# Salaries land overnight; a payday retry goes out mid-morning local time.
PAYDAY_TIME = time(10, 0)

HOLDOUT_REASON = (
    "Held out: chosen at random for the retry policy's holdout group, which gets no recovery actions so that "
    "the dashboard can compare recovery with Tinko against doing nothing."
)

CATEGORY_LABELS = {category.value: english(category.label).lower() for category in Category}

CATEGORY_LABELS[policy_steps.LOST_OR_STOLEN] = "lost, stolen or picked-up card"

CHANNEL_LABELS = {channel.value: english(channel.label) for channel in Channel}

CUSTOMER_MESSAGE_KIND = {
    Category.AUTHENTICATION_REQUIRED: MessageKind.AUTHENTICATION_NEEDED,
}

# Codes that say a card was lost, stolen or must be picked up (reference: Stripe decline
# codes; Visa category-1 codes 04, 41, 43). The networks forbid re-charging these cards;
# asking the customer for another card is allowed. Visa 07 ("pick up, fraud account")
# and every other fraud_or_stolen code stay fraud: nothing is ever sent for fraud.
LOST_OR_STOLEN_DECLINE_CODES = frozenset({"lost_card", "stolen_card", "pickup_card", "restricted_card"})
LOST_OR_STOLEN_VISA_CODES = frozenset({"04", "41", "43"})


@dataclass
class CardHistory:
    """Automatic attempts already made or scheduled for one card: (amount, currency, when)."""

    attempts: list[tuple[int, str, datetime]] = field(default_factory=list)


@dataclass
class PaymentHistory:
    auto_attempts: int = 0  # automatic re-charges made or scheduled (not cancelled/skipped)
    notifications: int = 0  # messages sent or scheduled
    last_notification_at: datetime | None = None
    last_step_at: datetime | None = None  # when the latest counted attempt (either kind) was scheduled
    last_sequence: int = 0
    busy: bool = False  # an attempt is queued or running: its outcome decides what comes next


@dataclass
class PlannedAttempt:
    kind: str
    channel: str
    scheduled_for: datetime
    reason: str
    message_kind: str = ""
    # The card-network limit (NetworkLimit) the reason tells of: one that moved this re-charge, or that
    # refused the re-charge a message stands in for. Code that counts reads this, not the reason.
    limit_code: str = ""


@dataclass
class Plan:
    attempt: PlannedAttempt | None
    status: str
    reason: str
    # The card-network limit that refused or moved a re-charge in this plan ('' if none did).
    limit_code: str = ""


class _Notes(list):
    """Why steps were passed over (sentences for the reason), and the limit code if a network limit was one."""

    limit_code = ""


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
) -> tuple[datetime | None, str, str]:
    """(the earliest allowed time at or after ``when``, or None if no automatic attempt is allowed; why; the
    NetworkLimit that refused or moved it, '' if none did)."""
    same_amount = [t for a, c, t in card.attempts if a == amount and c == currency and t > when - VISA_WINDOW]
    if len(same_amount) >= VISA_LIMIT:
        return None, (
            f"card-network limit: at most {VISA_LIMIT} automatic reattempts per card and amount in 30 days "
            f"(Visa rule, applied to every card); {len(same_amount)} already made or scheduled"
        ), NetworkLimit.VISA_15_30D
    note = code = ""
    if card_brand == "mastercard":
        recent = sorted(t for _, _, t in card.attempts if when - MASTERCARD_WINDOW < t <= when)
        if len(recent) >= MASTERCARD_LIMIT:
            # The window has room again once the oldest of the last ten leaves it.
            when = recent[-MASTERCARD_LIMIT] + MASTERCARD_WINDOW
            note = (
                f"moved to {when:%Y-%m-%d %H:%M} UTC: Mastercard allows at most {MASTERCARD_LIMIT} "
                "automatic attempts per card in 24 hours"
            )
            code = NetworkLimit.MASTERCARD_10_24H
    return when, note, code


def step_key(classification) -> str:
    """The key of ``policy.steps`` that applies to this decline (see the module docstring)."""
    category = classification.category
    if category != Category.FRAUD_OR_STOLEN:
        return category
    decline_code = (getattr(classification, "decline_code", "") or "").strip().lower()
    if decline_code:
        # A decline code decides (Stripe's "fraudulent" stays fraud whatever the raw network code says).
        return policy_steps.LOST_OR_STOLEN if decline_code in LOST_OR_STOLEN_DECLINE_CODES else policy_steps.FRAUD
    visa = (getattr(classification, "network_decline_code", "") or "").strip().upper()
    return policy_steps.LOST_OR_STOLEN if visa in LOST_OR_STOLEN_VISA_CODES else policy_steps.FRAUD


def _anchor(payment, history: PaymentHistory, now: datetime) -> datetime:
    """What a step's wait counts from: the later of the last step and the latest failure (never after now)."""
    times = [t for t in (history.last_step_at, getattr(payment, "last_failed_at", None)) if t is not None]
    return min(max(times), now) if times else now


def _recharge_allowed(classification, can_recharge, label) -> tuple[bool, str]:
    if classification.network_stop:
        return False, "the card network forbids any automatic reattempt"
    if classification.action != Action.AUTO_RETRY:
        return False, f"the decline rule says {label} declines are not re-charged"
    possible, why_not = can_recharge
    if not possible:
        return False, why_not[:1].lower() + why_not[1:].rstrip(".")
    return True, ""


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
    """Decide the next attempt for ``payment``: the first step of the policy not yet covered that can run.

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

    key = step_key(classification)
    label = CATEGORY_LABELS.get(key, key)
    done_any = bool(history.auto_attempts or history.notifications)
    idle = PaymentStatus.EXHAUSTED if done_any else PaymentStatus.FAILED
    if key == policy_steps.FRAUD:
        return Plan(None, idle, _sentence(
            f"No further action: {classification.reason.rstrip('.')}",
            ["suspected fraud never gets a re-charge or a message"],
        ))

    steps = policy_steps.steps_for(policy, key)
    notes = _Notes()
    if classification.network_stop:
        notes.append("the card network forbids any automatic reattempt")
    if not steps:
        return Plan(None, idle, _sentence(
            f"No further action: {classification.reason.rstrip('.')}", notes + [f"the policy has no steps for {label}"]
        ), notes.limit_code)
    recharge_ok, recharge_why = _recharge_allowed(classification, can_recharge, label)
    total = {policy_steps.RECHARGE: 0, policy_steps.MESSAGE: 0}
    for step in steps:
        total[step.action] += 1
    covered = {policy_steps.RECHARGE: history.auto_attempts, policy_steps.MESSAGE: history.notifications}
    position = {policy_steps.RECHARGE: 0, policy_steps.MESSAGE: 0}
    anchor = _anchor(payment, history, now)
    first_step = not done_any
    for step in steps:
        position[step.action] += 1
        if covered[step.action]:
            covered[step.action] -= 1
            continue
        ctx = _StepContext(
            payment=payment, policy=policy, classification=classification, history=history, card=card,
            tz=tz, now=now, anchor=anchor, key=key, label=label, first_step=first_step,
            number=position[step.action], total=total[step.action], timing=timing,
        )
        if step.action == policy_steps.RECHARGE:
            if not recharge_ok:
                _note(notes, recharge_why)
                continue
            attempt = _recharge_step(step, ctx, notes)
        else:
            attempt = _message_step(step, ctx, channels, notes)
        if attempt is not None:
            return Plan(attempt, PaymentStatus.RECOVERING, attempt.reason, attempt.limit_code)

    if history.notifications:
        return Plan(None, PaymentStatus.RECOVERING, _sentence(
            f"Every step of the policy for {label} is done; the pay link stays open until it expires", notes
        ), notes.limit_code)
    return Plan(None, idle, _sentence(f"No further action for {label}", notes), notes.limit_code)


@dataclass
class _StepContext:
    payment: object
    policy: object
    classification: object
    history: PaymentHistory
    card: CardHistory
    tz: ZoneInfo
    now: datetime
    anchor: datetime
    key: str
    label: str
    first_step: bool
    number: int
    total: int
    timing: CustomerTiming = NO_TIMING

    def since(self, step) -> str:
        return f"{humanize(timedelta(seconds=step.after_seconds))} after the {'failure' if self.first_step else 'last step'}"


def _note(notes: _Notes, note: str, limit_code: str = "") -> None:
    if note and note not in notes:
        notes.append(note)
    if limit_code:
        notes.limit_code = limit_code


def _recharge_step(step, ctx: _StepContext, notes: _Notes) -> PlannedAttempt | None:
    payment, policy, tz = ctx.payment, ctx.policy, ctx.tz
    parts = [f"re-charge {ctx.number} of {ctx.total}: {ctx.label}"]
    when = max(ctx.now, ctx.anchor + timedelta(seconds=step.after_seconds))
    failed_at = getattr(payment, "last_failed_at", None) or ctx.anchor
    min_delay = ctx.classification.min_delay
    if min_delay and failed_at + min_delay > when:
        when = failed_at + min_delay
        parts.append(f"the issuer asked to wait at least {humanize(min_delay)}")
    else:
        parts.append(ctx.since(step))
    window_end = payment.recovery_ends_at
    if policy.payday_alignment and ctx.classification.category == Category.INSUFFICIENT_FUNDS:
        payday, basis = payday_for(
            when, timing=ctx.timing, policy_days=policy.payday_days, at=PAYDAY_TIME, tz=tz, next_payday=next_payday
        )
        if payday is not None and (window_end is None or payday < window_end):
            if payday.date() != when.astimezone(tz).date():
                parts.append(f"aligned to {basis}")
            when = payday
    card = ctx.card
    psp_retry = getattr(payment, "provider_retry_at", None)
    if psp_retry is not None and psp_retry > ctx.now - PSP_RETRY_GAP:
        # The PSP's own retry (Stripe Billing's) is an automatic attempt on the same card:
        # it counts against the network limits, and Tinko keeps a day away from it.
        card = CardHistory(attempts=[*card.attempts, (payment.amount, payment.currency, psp_retry)])
        if psp_retry - PSP_RETRY_GAP < when < psp_retry + PSP_RETRY_GAP:
            when = psp_retry + PSP_RETRY_GAP
            parts.append(
                f"{humanize(PSP_RETRY_GAP)} after the payment provider's own retry ({psp_retry:%Y-%m-%d %H:%M} UTC)"
            )
    when, moved = outside_quiet_hours(when, policy, tz)
    if moved:
        parts.append(f"outside quiet hours in {tz.key}")
    allowed, note, limit_code = check_network_limits(
        card_brand=payment.card_brand, card=card, amount=payment.amount, currency=payment.currency, when=when
    )
    if allowed is None:
        _note(notes, note, limit_code)
        return None
    if note:
        when = allowed
        parts.append(note)
    if window_end is not None and when >= window_end:
        _note(notes, "the next re-charge would fall after the recovery window ends")
        return None
    parts.extend(notes)
    reason = _cap(parts[0] + ", " + ", ".join(parts[1:]))
    return PlannedAttempt(AttemptKind.AUTO_RETRY, Channel.PSP, when, reason, limit_code=limit_code or notes.limit_code)


def _message_step(step, ctx: _StepContext, channels: list[str], notes: _Notes) -> PlannedAttempt | None:
    if not channels:
        _note(notes, "no way to reach the customer: no contact on an enabled channel")
        return None
    parts = []
    if step.channel in channels:
        channel = step.channel
    else:
        channel = channels[ctx.history.notifications % len(channels)]
        if step.channel:
            parts.append(f"{CHANNEL_LABELS[step.channel]} cannot reach the customer")
    when = max(ctx.now, ctx.anchor + timedelta(seconds=step.after_seconds))
    when, held = message_time(when, timing=ctx.timing, tz=ctx.tz)
    when, moved = outside_quiet_hours(when, ctx.policy, ctx.tz)
    window_end = ctx.payment.recovery_ends_at
    if window_end is not None and when >= window_end:
        _note(notes, "no further message fits in the recovery window")
        return None
    if ctx.number == 1:
        kind = CUSTOMER_MESSAGE_KIND.get(ctx.classification.category, MessageKind.FIRST_NOTICE)
    elif ctx.number == ctx.total:
        kind = MessageKind.FINAL_NOTICE
    else:
        kind = MessageKind.REMINDER
    head = f"message {ctx.number} of {ctx.total} by {CHANNEL_LABELS[channel]}: {ctx.label}"
    if ctx.key == policy_steps.LOST_OR_STOLEN or ctx.classification.network_stop:
        parts.append("asking for another card (the card network forbids a re-charge)")
    elif ctx.classification.action == Action.CUSTOMER_ACTION:
        parts.append("the customer must act")
    elif ctx.classification.action == Action.AUTO_RETRY and policy_steps.RECHARGE in {
        s.action for s in policy_steps.steps_for(ctx.policy, ctx.key)
    }:
        parts.append("alongside the automatic re-charges")
    parts.append(ctx.since(step) if step.after_seconds else "at once")
    if held:
        parts.append(held)
    if moved:
        parts.append(f"outside quiet hours in {ctx.tz.key}")
    parts.extend(notes)
    reason = _cap(head + ", " + ", ".join(parts))
    return PlannedAttempt(AttemptKind.NOTIFICATION, channel, when, reason, kind, limit_code=notes.limit_code)


def plan_retry_now(
    *, payment, classification, card: CardHistory, can_recharge: tuple[bool, str], policy, tz: ZoneInfo, now: datetime,
    requested_by: str, override_quiet_hours: bool = False,
) -> Plan:
    """A re-charge someone asked for ("retry now"), within the card networks' rules. Pure.

    Quiet hours move it to their end, unless ``override_quiet_hours`` (the
    service allows that only for a person, never an API key or the system); the
    reason then says who overrode them. ``classification`` is the latest failure
    (None when there is none).
    """
    status = payment.status
    if classification is not None and classification.network_stop:
        return Plan(None, status, f"The card network forbids another attempt: {classification.reason}")
    possible, why_not = can_recharge
    if not possible:
        return Plan(None, status, why_not)
    parts = [f"Re-charge requested by {requested_by}"]
    when, moved = outside_quiet_hours(now, policy, tz)
    if moved and override_quiet_hours:
        when = now
        parts.append(f"inside the customer's quiet hours in {tz.key}: {requested_by} chose to override them")
    elif moved:
        parts.append(f"moved to the end of the customer's quiet hours in {tz.key}")
    allowed, note, limit_code = check_network_limits(
        card_brand=payment.card_brand, card=card, amount=payment.amount, currency=payment.currency, when=when
    )
    if allowed is None:
        return Plan(None, status, _cap(note) + ".", limit_code)
    if note:
        when = allowed
        parts.append(note)
    reason = "; ".join(parts) + "."
    return Plan(PlannedAttempt(AttemptKind.AUTO_RETRY, Channel.PSP, when, reason, limit_code=limit_code),
                PaymentStatus.RECOVERING, reason, limit_code)


def plan_card_changed(
    *, payment, classification, card: CardHistory, can_recharge: tuple[bool, str], policy, tz: ZoneInfo, now: datetime,
    source: str, card_replaced: bool,
) -> Plan:
    """A re-charge with the payment's new card details (card updater, the customer's new card). Pure.

    ``card_replaced``: a different card (new fingerprint or number), which lifts
    a network stop that applied to the old one; a new expiry on the same card
    does not. Quiet hours, the networks' limits, the recovery window and the
    holdout apply as for any planned re-charge.
    """
    status = payment.status
    if status in (PaymentStatus.RECOVERED, PaymentStatus.CANCELLED):
        return Plan(None, status, f"The payment is already {status}; nothing more to do.")
    window_end = payment.recovery_ends_at
    if window_end is not None and now >= window_end:
        return Plan(None, status, f"The {policy.recovery_window_days}-day recovery window has ended.")
    if getattr(payment, "holdout_group", "") == "holdout":
        return Plan(None, status, HOLDOUT_REASON)
    if classification is not None and classification.network_stop and not card_replaced:
        return Plan(None, status, f"The card network forbids another attempt on this card: {classification.reason}")
    possible, why_not = can_recharge
    if not possible:
        return Plan(None, status, why_not)
    parts = [f"The card was updated ({source}): re-charge with the new details"]
    when, moved = outside_quiet_hours(now, policy, tz)
    if moved:
        parts.append(f"outside quiet hours in {tz.key}")
    allowed, note, limit_code = check_network_limits(
        card_brand=payment.card_brand, card=card, amount=payment.amount, currency=payment.currency, when=when
    )
    if allowed is None:
        return Plan(None, status, _sentence("No re-charge with the new card", [note]), limit_code)
    if note:
        when = allowed
        parts.append(note)
    if window_end is not None and when >= window_end:
        return Plan(None, status, "No re-charge with the new card: it would fall after the recovery window ends.")
    reason = parts[0] + (", " + ", ".join(parts[1:]) if parts[1:] else "") + "."
    return Plan(PlannedAttempt(AttemptKind.AUTO_RETRY, Channel.PSP, when, reason, limit_code=limit_code),
                PaymentStatus.RECOVERING, reason, limit_code)


def _sentence(head: str, notes: list[str]) -> str:
    return _cap(head + (" (" + "; ".join(notes) + ")" if notes else "") + ".")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
