"""A realistic synthetic history of failed payments for one organization (demos and benchmarks).

Every payment gets its first failure (a FailureEvent classified like the real
classifier would), the attempts a recovery would have made (automatic
re-charges with backoff for soft declines, messages with a pay link for
customer-action declines, nothing after fraud), a failure event for each
declined re-charge, and, for a plausible share by category, a recovery
attributed to the attempt and channel that brought the money back.

Nothing generated can act: every attempt is finished (succeeded, failed) and
no attempt is left scheduled, so the scheduler never re-charges sample data.
References start with ``sample-`` and payments carry ``{"sample": true}`` in
their metadata. Payments that would still be open today stay ``recovering``
with nothing scheduled; the expiry sweep ends them when their window closes.

Rows go in with tinko.bulk in chunks: COPY on PostgreSQL (a million payments
and three million attempts in a few minutes), multi-row INSERTs elsewhere.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from analytics.models import RollupState
from recovery.models import (
    Action,
    AttemptKind,
    AttemptStatus,
    Category,
    Channel,
    FailureEvent,
    HoldoutGroup,
    MessageKind,
    Payment,
    PaymentStatus,
    RecoveryAttempt,
)
from tinko import bulk
from tinko.formatting import english

PREFIX = "sample-"
CHUNK = 10_000
RECOVERY_WINDOW = timedelta(days=21)

# (category, weight, action, decline code, chance of recovery with Tinko)
CATEGORIES = [
    (Category.INSUFFICIENT_FUNDS, 44, Action.AUTO_RETRY, "insufficient_funds", 0.55),
    (Category.CARD_DECLINED, 16, Action.AUTO_RETRY, "generic_decline", 0.35),
    (Category.EXPIRED_CARD, 10, Action.CUSTOMER_ACTION, "expired_card", 0.45),
    (Category.AUTHENTICATION_REQUIRED, 8, Action.CUSTOMER_ACTION, "authentication_required", 0.6),
    (Category.PROCESSING_ERROR, 6, Action.AUTO_RETRY, "processing_error", 0.8),
    (Category.UNKNOWN, 5, Action.AUTO_RETRY, "", 0.3),
    (Category.FRAUD_OR_STOLEN, 4, Action.STOP, "stolen_card", 0.0),
    (Category.INVALID_CARD, 3, Action.CUSTOMER_ACTION, "incorrect_number", 0.3),
    (Category.DO_NOT_RETRY, 2, Action.STOP, "do_not_honor", 0.05),
    (Category.NETWORK_ERROR, 2, Action.AUTO_RETRY, "issuer_not_available", 0.85),
]
# Without Tinko some customers pay anyway (they notice, or the merchant chases them).
ORGANIC_SHARE = 0.35
PROVIDERS = [("stripe", 60), ("razorpay", 25), ("sandbox", 15)]
BRANDS = [("visa", 55), ("mastercard", 35), ("amex", 10)]
OTHER_CURRENCIES = ["USD", "EUR", "GBP", "INR"]
MESSAGE_CHANNELS = [Channel.EMAIL, Channel.SMS, Channel.WHATSAPP]
BACKOFF = [timedelta(days=1), timedelta(days=2), timedelta(days=3), timedelta(days=4), timedelta(days=5)]


@dataclass
class _Plan:
    payment: dict
    events: list[dict] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)
    recovered_by: dict | None = None


def _weighted(rng: random.Random, choices):
    return rng.choices([c[0] for c in choices], weights=[c[1] for c in choices])[0]


class _Generator:
    def __init__(self, *, organization, days: int, seed: int, holdout_percent: int, end: datetime):
        self.org = organization
        self.days = days
        self.rng = random.Random(seed)
        self.holdout_percent = holdout_percent
        self.end = end
        self.currencies = [organization.default_currency] + [c for c in OTHER_CURRENCIES if c != organization.default_currency][:2]
        self.currency_weights = [70, 20, 10][: len(self.currencies)]
        self.category_weights = [c[1] for c in CATEGORIES]

    def plan(self, n: int) -> _Plan:
        rng = self.rng
        category, _, action, decline_code, recover_chance = rng.choices(CATEGORIES, weights=self.category_weights)[0]
        failed_at = self.end - timedelta(seconds=rng.random() * self.days * 86400)
        brand = _weighted(rng, BRANDS)
        group = ""
        if self.holdout_percent:
            group = HoldoutGroup.HOLDOUT if rng.random() * 100 < self.holdout_percent else HoldoutGroup.TREATMENT
        amount = max(100, int(math.exp(rng.gauss(8.0, 0.8))) // 100 * 100 - 1)
        payment = {
            "reference": f"{PREFIX}{n:07d}", "provider": _weighted(rng, PROVIDERS), "amount": amount,
            "currency": rng.choices(self.currencies, weights=self.currency_weights)[0],
            "card_brand": brand, "card_last4": f"{rng.randrange(10000):04d}", "card_exp_month": rng.randint(1, 12),
            "card_exp_year": rng.randint(2026, 2031), "category": category, "first_failed_at": failed_at,
            "last_failed_at": failed_at, "recovery_ends_at": failed_at + RECOVERY_WINDOW,
            "holdout_group": group, "metadata": {"sample": True}, "description": "Sample subscription renewal",
            "failure_count": 1, "created_at": failed_at, "updated_at": failed_at,
        }
        plan = _Plan(payment)
        network_advice = ""
        min_delay = 0
        network_stop = False
        if brand == "mastercard" and action == Action.AUTO_RETRY and rng.random() < 0.04:
            network_advice, min_delay = "24", 86400
        if action == Action.STOP and rng.random() < 0.5:
            network_stop = True
            network_advice = "03" if brand == "mastercard" else ""
        plan.events.append(self._event(failed_at, category, action, decline_code, network_advice, min_delay, network_stop))

        recovers = rng.random() < (recover_chance if group != HoldoutGroup.HOLDOUT else recover_chance * ORGANIC_SHARE)
        now = self.end
        if group == HoldoutGroup.HOLDOUT:
            status = PaymentStatus.FAILED
            if recovers:
                self._recover(payment, failed_at + timedelta(hours=rng.expovariate(1 / 96)), "", None)
        elif action == Action.AUTO_RETRY and not network_stop:
            tries = rng.randint(3, 5)
            when = failed_at
            winner = rng.randint(1, tries) if recovers else 0
            for i in range(tries):
                delay = BACKOFF[i]
                if i == 0 and min_delay:
                    delay = max(delay, timedelta(seconds=min_delay))
                when = when + delay + timedelta(minutes=rng.randint(0, 180))
                if when > now:
                    break
                ok = i + 1 == winner
                attempt = self._attempt(len(plan.attempts) + 1, AttemptKind.AUTO_RETRY, Channel.PSP, when, ok, payment)
                plan.attempts.append(attempt)
                if ok:
                    self._recover(payment, when + timedelta(seconds=rng.randint(2, 30)), Channel.PSP, attempt)
                    break
                plan.events.append(self._event(when, category, action, decline_code, "", 0, False, source="attempt"))
                payment["failure_count"] += 1
                payment["last_failed_at"] = when
            status = None
            if not payment.get("recovered_at"):
                # Messages with a pay link once the retries are used up.
                for k in range(rng.choice((1, 1, 2))):
                    if when + timedelta(hours=2 + 48 * k) <= now:
                        self._message(plan, when + timedelta(hours=2 + 48 * k), recovers=False)
        elif action == Action.CUSTOMER_ACTION or (category == Category.DO_NOT_RETRY and not network_stop):
            status = None
            messages = rng.randint(2, 5) if action == Action.CUSTOMER_ACTION else 1
            winner = rng.randint(1, messages) if recovers else 0
            when = failed_at + timedelta(minutes=rng.randint(1, 60))
            for i in range(messages):
                if when > now:
                    break
                if self._message(plan, when, recovers=i + 1 == winner):
                    break
                when += timedelta(days=2)
        else:
            status = PaymentStatus.FAILED
        if payment.get("recovered_at") and payment["recovered_at"] > now:
            for key in ("recovered_at", "recovered_amount", "recovered_attempt_id", "recovered_channel"):
                payment.pop(key, None)
        if payment.get("recovered_at"):
            payment["status"] = PaymentStatus.RECOVERED
            payment["status_reason"] = "Recovered."
            payment["updated_at"] = payment["recovered_at"]
        elif failed_at + RECOVERY_WINDOW <= now and (plan.attempts or status is None):
            payment["status"] = PaymentStatus.EXHAUSTED
            payment["status_reason"] = "The 21-day recovery window has ended."
            payment["updated_at"] = failed_at + RECOVERY_WINDOW
        elif status == PaymentStatus.FAILED:
            payment["status"] = PaymentStatus.FAILED
            payment["status_reason"] = "Sample data: no recovery action for this decline."
        else:
            payment["status"] = PaymentStatus.RECOVERING
            payment["status_reason"] = "Sample data: nothing further is scheduled."
        if plan.attempts:
            payment["updated_at"] = max(payment["updated_at"], plan.attempts[-1]["finished_at"])
        return plan

    def _message(self, plan: _Plan, when: datetime, *, recovers: bool) -> bool:
        rng = self.rng
        channel = MESSAGE_CHANNELS[len([a for a in plan.attempts if a["kind"] == AttemptKind.NOTIFICATION]) % 3]
        attempt = self._attempt(len(plan.attempts) + 1, AttemptKind.NOTIFICATION, channel, when, True, plan.payment)
        plan.attempts.append(attempt)
        if recovers:
            self._recover(plan.payment, when + timedelta(hours=rng.expovariate(1 / 10)), channel, attempt)
        return recovers

    def _recover(self, payment, when, channel, attempt) -> None:
        payment["recovered_at"] = when
        payment["recovered_amount"] = payment["amount"]
        payment["recovered_channel"] = channel
        payment["_recovered_attempt"] = attempt

    def _attempt(self, sequence, kind, channel, when, ok, payment) -> dict:
        auto = kind == AttemptKind.AUTO_RETRY
        return {
            "sequence": sequence, "kind": kind, "channel": channel,
            "message_kind": "" if auto else (MessageKind.FIRST_NOTICE if sequence == 1 else MessageKind.REMINDER),
            "status": AttemptStatus.SUCCEEDED if (ok or not auto) else AttemptStatus.FAILED,
            "scheduled_for": when, "reason": "Sample data.", "amount": payment["amount"],
            "currency": payment["currency"], "card_key": "", "claims": 1, "queued_at": when, "started_at": when,
            "finished_at": when + timedelta(seconds=2), "outcome": "Charged." if ok and auto else (
                "Sent." if not auto else "Declined."), "created_at": when,
        }

    def _event(self, when, category, action, decline_code, network_advice, min_delay, network_stop, source="api"):
        return {
            "source": source, "occurred_at": when, "received_at": when, "code": "card_declined",
            "decline_code": decline_code, "network_advice_code": network_advice, "category": category,
            "action": action, "min_delay_seconds": min_delay, "network_stop": network_stop,
            "reason": f"Sample data: {english(Category(category).label).lower()}.",
        }


def generate(*, organization, payments: int, days: int = 90, seed: int = 1, holdout_percent: int = 0,
             end: datetime | None = None, start_number: int = 1) -> dict:
    """Add ``payments`` sample payments (failed over the last ``days`` days before ``end``) to ``organization``.

    Deterministic for a seed. Numbers references from ``start_number`` so a
    larger set can be added on top of a smaller one. Returns the row counts.
    """
    gen = _Generator(organization=organization, days=days, seed=seed, holdout_percent=holdout_percent,
                     end=end or timezone.now())
    counts = {"payments": 0, "events": 0, "attempts": 0}
    for first in range(0, payments, CHUNK):
        plans = [gen.plan(start_number + first + i) for i in range(min(CHUNK, payments - first))]
        with transaction.atomic():
            _write(organization, plans)
        counts["payments"] += len(plans)
        counts["events"] += sum(len(p.events) for p in plans)
        counts["attempts"] += sum(len(p.attempts) for p in plans)
    # The rows carry their historical updated_at, which an incremental refresh would not
    # look at: the next refresh of the dashboard figures rebuilds them all.
    RollupState.objects.filter(organization=organization).update(refreshed_through=None)
    return counts


def _write(organization, plans: list[_Plan]) -> None:
    fast = bulk.is_postgresql()
    n_events = sum(len(p.events) for p in plans)
    n_attempts = sum(len(p.attempts) for p in plans)
    if fast:
        # Ids first, so that every row (and the payments' recovering attempt) goes in with one COPY per table.
        ids = bulk.allocate_ids({Payment: len(plans), FailureEvent: n_events, RecoveryAttempt: n_attempts})
        pay_ids, event_ids, attempt_ids = iter(ids[Payment]), iter(ids[FailureEvent]), iter(ids[RecoveryAttempt])
    payments, events, attempts = [], [], []
    org_id = organization.pk
    for plan in plans:
        p = plan.payment
        p["organization_id"] = org_id
        p["id"] = next(pay_ids) if fast else None
        for a in plan.attempts:
            a["id"] = next(attempt_ids) if fast else None
            a["organization_id"] = org_id
            a["payment_id"] = p["id"]
            if fast:
                a["idempotency_key"] = f"tinko_sample_{a['id']}"
        recovered_attempt = p.pop("_recovered_attempt", None)
        plan.recovered_by = recovered_attempt if p.get("recovered_at") else None
        p["recovered_attempt_id"] = plan.recovered_by["id"] if plan.recovered_by else None
        for e in plan.events:
            e["id"] = next(event_ids) if fast else None
            e["organization_id"] = org_id
            e["payment_id"] = p["id"]
        payments.append(p)
        events.extend(plan.events)
        attempts.extend(plan.attempts)
    if fast:
        bulk.insert([(Payment, payments), (FailureEvent, events), (RecoveryAttempt, attempts)])
        return
    # Local mode: ids come back from each INSERT, so payments go first and learn their recovering attempt last.
    bulk.insert([(Payment, payments)])
    for plan in plans:
        for row in plan.events + plan.attempts:
            row["payment_id"] = plan.payment["id"]
    bulk.insert([(RecoveryAttempt, attempts), (FailureEvent, events)])
    recovered = [Payment(id=plan.payment["id"], recovered_attempt_id=plan.recovered_by["id"])
                 for plan in plans if plan.recovered_by is not None]
    bulk.update(Payment, recovered, ["recovered_attempt"])
