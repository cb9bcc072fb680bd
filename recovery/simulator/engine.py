"""Replaying failures through a strategy with a simulated clock, in memory.

:class:`TinkoStrategy` drives the REAL classifier (``recovery.classifier.classify``)
and the REAL planner (``recovery.planner.plan_next``) exactly as ingestion and
the attempt runner do: plan at the failure, run the planned attempt when it
falls due, record its outcome, re-plan. Only the runner's bookkeeping (what
``recovery.history`` would read back from the database, the respect rules'
deferrals) is kept in memory; ``tests/recovery/test_simulator.py`` checks it
makes the same decisions as the engine driven through the database.

:class:`FixedSchedule` is a plain dunning schedule that ignores decline codes
and network rules: the baselines merchants compare against.

Both return an :class:`Outcome` per failure; :mod:`recovery.simulator.results`
adds them up. Network rules are checked here, independently of the planner,
for every strategy alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace

from recovery.classifier import classify
from recovery.models import AttemptKind, Channel, Payment, PaymentStatus
from recovery.payday import NO_TIMING, infer_timing
from recovery.planner import (
    MASTERCARD_LIMIT,
    MASTERCARD_WINDOW,
    VISA_LIMIT,
    VISA_WINDOW,
    CardHistory,
    PaymentHistory,
    outside_quiet_hours,
    plan_next,
)
from recovery.simulator.population import Failure, PopulationModel, charge_succeeds, pays_after_message

CAP_WINDOW = timedelta(hours=24)  # notifications.rules: one message per customer in 24 hours
LINK_TTL = timedelta(hours=48)  # recovery.services.LINK_TTL
MAX_STEPS = 200


@dataclass
class Step:
    """One thing a strategy did: what the equivalence test compares with the database's attempts."""

    kind: str  # auto_retry | notification
    channel: str
    when: datetime
    result: str  # succeeded | failed | sent


@dataclass
class Outcome:
    index: int
    family: str
    amount: int
    recovered_at: datetime | None = None
    via: str = ""  # retry | link
    charges: int = 0
    messages: int = 0
    quiet_messages: int = 0
    violations: int = 0
    double_charges: int = 0
    messages_to_fraud: int = 0
    expired_links: int = 0
    steps: list[Step] = field(default_factory=list)


@dataclass
class NetworkRules:
    """The card networks' rules, checked for every automatic charge of every strategy."""

    brand: str
    stopped: bool = False
    not_before: datetime | None = None
    charges: list[datetime] = field(default_factory=list)

    def violates(self, when: datetime) -> bool:
        if self.stopped:  # Visa category 1, Mastercard MAC 03/21: no reattempt at all
            return True
        if self.not_before is not None and when < self.not_before:  # MAC 24–30: retry after …
            return True
        if sum(1 for t in self.charges if t > when - VISA_WINDOW) >= VISA_LIMIT:
            return True
        if self.brand == "mastercard" and sum(1 for t in self.charges if t > when - MASTERCARD_WINDOW) >= MASTERCARD_LIMIT:
            return True
        return False

    def record(self, when: datetime, classification) -> None:
        self.charges.append(when)
        self.learn(when, classification)

    def learn(self, when: datetime, classification) -> None:
        if classification.network_stop:
            self.stopped = True
        if classification.min_delay:
            self.not_before = when + classification.min_delay


_classified: dict = {}


def classify_failure(failure: Failure, organization=None):
    """The real classifier's answer for the failure's codes (the same codes always get the same answer in a run)."""
    key = (getattr(organization, "pk", organization), failure.brand, tuple(sorted(failure.codes.items())))
    found = _classified.get(key)
    if found is None:
        c = classify(organization=organization, provider="stripe", card_brand=failure.brand, **failure.codes)
        # What the planner reads from a FailureEvent: the classification and the codes as reported.
        found = SimpleNamespace(
            category=c.category, action=c.action, min_delay=c.min_delay, network_stop=c.network_stop, reason=c.reason,
            decline_code=failure.codes.get("decline_code", ""),
            network_decline_code=failure.codes.get("network_decline_code", ""),
        )
        _classified[key] = found
    return found


def forget_classifications() -> None:
    """Called at the start of every run: rules may have changed since the last one."""
    _classified.clear()


def in_quiet_hours(when: datetime, failure: Failure, policy) -> bool:
    return outside_quiet_hours(when, policy, failure.tz)[1]


class TinkoStrategy:
    """A retry policy, run by Tinko's classifier and planner."""

    def __init__(self, name: str, policy, *, channels: tuple[str, ...] = (Channel.EMAIL, Channel.SMS, Channel.WHATSAPP),
                 organization=None):
        self.name = name
        self.policy = policy
        self.enabled = set(channels)
        self.organization = organization

    def channels_for(self, failure: Failure) -> list[str]:
        contact = {Channel.EMAIL: failure.email, Channel.SMS: failure.phone, Channel.WHATSAPP: failure.phone}
        return [c for c in self.policy.channels if c in self.enabled and contact.get(c)]

    def run(self, model: PopulationModel, failure: Failure, *, issuer=charge_succeeds, customer=pays_after_message) -> Outcome:
        """Replay one failure. ``issuer`` and ``customer`` answer re-charges and messages (the population model's
        by default; the equivalence test passes the sandbox PSP's test-card table)."""
        policy = self.policy
        out = Outcome(failure.index, failure.family, failure.amount)
        start = failure.failed_at
        payment = Payment(
            reference=f"sim-{failure.index}", amount=failure.amount, currency=failure.currency,
            card_brand=failure.brand, status=PaymentStatus.FAILED, first_failed_at=start, last_failed_at=start,
            recovery_ends_at=start + timedelta(days=policy.recovery_window_days), provider="sandbox", holdout_group="",
        )
        classification = classify_failure(failure, self.organization)
        rules = NetworkRules(failure.brand)
        rules.learn(start, classification)
        history = PaymentHistory()
        card = CardHistory()
        channels = self.channels_for(failure)
        timing = infer_timing(paid=failure.paid_history, opened=[], tz=failure.tz) if failure.paid_history else NO_TIMING
        last_attempt = start
        last_message: datetime | None = None
        # The payment's one live link: each message extends it to 48 hours after that message; it outlives the
        # recovery window until its own expiry (recovery.services.link_for_message). A customer who decides to pay
        # at p can if a message sent by p still covers p.
        sent: list[datetime] = []
        wants_to_pay: list[datetime] = []

        def paid_by(limit):
            valid = [p for p in wants_to_pay if p <= limit and any(t <= p <= t + LINK_TTL for t in sent)]
            return min(valid) if valid else None
        now = start
        for _ in range(MAX_STEPS):
            plan = plan_next(
                payment=payment, policy=policy, classification=classification, history=history, card=card,
                channels=channels, can_recharge=(True, ""), tz=failure.tz, now=now, timing=timing,
            )
            payment.status = plan.status
            attempt = plan.attempt
            if attempt is None:
                break
            when = attempt.scheduled_for
            history.last_sequence += 1
            if attempt.kind == AttemptKind.AUTO_RETRY:
                card.attempts.append((payment.amount, payment.currency, when))
            if paid_by(when) is not None:
                break  # the customer paid first; the runner cancels what was scheduled
            if attempt.kind == AttemptKind.AUTO_RETRY:
                now = when
                out.violations += rules.violates(when)
                out.charges += 1
                history.auto_attempts += 1
                history.last_step_at = when
                if issuer(model, failure, when=when, retry=history.auto_attempts - 1, last_attempt=last_attempt):
                    out.steps.append(Step(attempt.kind, attempt.channel, when, "succeeded"))
                    out.recovered_at, out.via = when, "retry"
                    return out
                last_attempt = when
                out.steps.append(Step(attempt.kind, attempt.channel, when, "failed"))
                # The decline of Tinko's own re-charge is classified like any failure.
                classification = classify_failure(failure, self.organization)
                rules.record(when, classification)
                payment.failure_count += 1
                payment.last_failed_at = when
                continue
            # A message: the respect rules may hold it back (quiet hours, one per customer in 24 hours).
            while True:
                held, moved = outside_quiet_hours(when, policy, failure.tz)
                if moved:
                    when = held
                    continue
                if last_message is not None and when < last_message + CAP_WINDOW:
                    when = last_message + CAP_WINDOW
                    continue
                break
            if paid_by(when) is not None:
                break
            now = when
            history.notifications += 1
            history.last_notification_at = when  # a deferred message's attempt is rescheduled to when it went
            history.last_step_at = when
            last_message = when
            out.messages += 1
            out.steps.append(Step(attempt.kind, attempt.channel, when, "sent"))
            if in_quiet_hours(when, failure, policy):
                out.quiet_messages += 1
            if failure.family == "fraud":
                out.messages_to_fraud += 1
            sent.append(when)
            paid = customer(model, failure, when=when, nth=history.notifications - 1)
            if paid is not None:
                wants_to_pay.append(paid)
        pays_at = paid_by(max(wants_to_pay, default=start))
        out.expired_links = sum(1 for p in wants_to_pay if not any(t <= p <= t + LINK_TTL for t in sent))
        if pays_at is not None:
            out.recovered_at, out.via = pays_at, "link"
        return out


@dataclass
class FixedSchedule:
    """A fixed dunning schedule: re-charge on these days, e-mail on those, whatever the decline said."""

    name: str
    retry_days: tuple[float, ...]
    email_days: tuple[float, ...]
    link_days: int = 30  # a hosted invoice page stays payable this long

    def run(self, model: PopulationModel, failure: Failure) -> Outcome:
        out = Outcome(failure.index, failure.family, failure.amount)
        start = failure.failed_at
        rules = NetworkRules(failure.brand)
        rules.learn(start, classify_failure(failure))
        events = sorted(
            [(start + timedelta(days=d), AttemptKind.AUTO_RETRY) for d in self.retry_days]
            + [(start + timedelta(days=d), AttemptKind.NOTIFICATION) for d in self.email_days]
        )
        ends = start + timedelta(days=self.link_days)
        pays_at = None
        last_attempt = start
        retries = messages = 0
        for when, kind in events:
            if pays_at is not None and pays_at <= when:
                break
            if kind == AttemptKind.AUTO_RETRY:
                out.violations += rules.violates(when)
                out.charges += 1
                if charge_succeeds(model, failure, when=when, retry=retries, last_attempt=last_attempt):
                    out.steps.append(Step(kind, Channel.PSP, when, "succeeded"))
                    out.recovered_at, out.via = when, "retry"
                    return out
                retries += 1
                last_attempt = when
                out.steps.append(Step(kind, Channel.PSP, when, "failed"))
                rules.record(when, classify_failure(failure))
                continue
            if not failure.email:
                continue
            out.messages += 1
            out.steps.append(Step(kind, Channel.EMAIL, when, "sent"))
            if in_quiet_hours(when, failure, QUIET_REPORTED):
                out.quiet_messages += 1
            if failure.family == "fraud":
                out.messages_to_fraud += 1
            paid = pays_after_message(model, failure, when=when, nth=messages)
            messages += 1
            if paid is not None and paid < ends and (pays_at is None or paid < pays_at):
                pays_at = paid
        if pays_at is not None:
            out.recovered_at, out.via = pays_at, "link"
        return out


# Quiet hours for reporting the baselines' messages: Tinko's default (21:00–08:00, the customer's time).
QUIET_REPORTED = SimpleNamespace(quiet_hours_start=datetime(2000, 1, 1, 21).time(), quiet_hours_end=datetime(2000, 1, 1, 8).time())

BASELINES = (
    # Stripe-style "smart retries": 8 tries within 2 weeks, plus a failure e-mail and a reminder.
    FixedSchedule("8 retries in 14 days + 2 e-mails", (1, 3, 5, 7, 9, 11, 13, 14), (0, 7)),
    FixedSchedule("Retry on days 8/16/24 + 1 e-mail", (8, 16, 24), (0,)),
    FixedSchedule("Daily for 14 days", tuple(range(1, 15)), ()),
)
