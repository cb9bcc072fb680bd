"""A policy's schedule, played forward: what Tinko would do for a payment failing now.

For the policy pages' live preview ("a payment failing now with insufficient
funds, customer in Asia/Kolkata: retries at …, message at …"). It runs the
real planner (recovery/planner.py) step by step, assuming every re-charge
declines again and the customer never pays, so the preview shows the whole
schedule up to where the policy stops. Reads the default classification rules;
writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from django.utils.translation import gettext

from recovery.classifier import Classification
from recovery.labels import step_key_label
from recovery.messaging import enabled_channels
from recovery.models import Action, AttemptKind, Category, Channel, ClassificationRule, PaymentStatus
from recovery.planner import CATEGORY_LABELS, CardHistory, PaymentHistory, plan_next
from recovery.steps import LOST_OR_STOLEN

MAX_STEPS = 40
# Categories whose default rules Tinko may retry; the rest wait for the customer or stop.
_FALLBACK_ACTION = {
    Category.INSUFFICIENT_FUNDS: Action.AUTO_RETRY,
    Category.PROCESSING_ERROR: Action.AUTO_RETRY,
    Category.NETWORK_ERROR: Action.AUTO_RETRY,
    Category.CARD_DECLINED: Action.AUTO_RETRY,
    Category.UNKNOWN: Action.AUTO_RETRY,
    Category.AUTHENTICATION_REQUIRED: Action.CUSTOMER_ACTION,
    Category.EXPIRED_CARD: Action.CUSTOMER_ACTION,
    Category.INVALID_CARD: Action.CUSTOMER_ACTION,
}


@dataclass(frozen=True)
class Step:
    when: datetime  # in the customer's time zone
    kind: str  # "auto_retry" | "notification"
    channel: str
    reason: str

    @property
    def label(self) -> str:
        if self.kind == AttemptKind.AUTO_RETRY:
            return gettext("Automatic re-charge")
        return gettext("Message by %(channel)s") % {"channel": Channel(self.channel).label}


@dataclass(frozen=True)
class Preview:
    category: str
    timezone: str
    started: datetime
    steps: list[Step]
    end: str  # why the schedule stops

    @property
    def category_label(self) -> str:
        return step_key_label(self.category).lower()


def classification_for(category: str):
    """The default rules' classification for a typical decline in ``category`` (or ``lost_or_stolen``)."""
    if category in (LOST_OR_STOLEN, Category.FRAUD_OR_STOLEN):
        # The planner tells a lost card from fraud by the decline code.
        lost = category == LOST_OR_STOLEN
        return SimpleNamespace(
            category=Category.FRAUD_OR_STOLEN, action=Action.STOP, min_delay=timedelta(0), network_stop=False,
            reason="Card has been reported lost." if lost else "Suspected fraud.",
            decline_code="lost_card" if lost else "fraudulent", network_decline_code="",
        )
    rule = (
        ClassificationRule.objects.filter(organization=None, category=category, is_active=True, network_stop=False)
        .exclude(field="message")
        .order_by("priority", "pk")
        .first()
    )
    action = rule.action if rule else _FALLBACK_ACTION.get(category, Action.STOP)
    reason = rule.description if rule else CATEGORY_LABELS.get(category, category)
    return Classification(
        category=category, action=action, min_delay=timedelta(0), network_stop=False, reason=reason, rule_id=None
    )


def preview_schedule(*, policy, category: str, timezone: str, now: datetime) -> Preview:
    tz = ZoneInfo(timezone)
    classification = classification_for(category)
    payment = SimpleNamespace(
        status=PaymentStatus.FAILED, recovery_ends_at=now + timedelta(days=policy.recovery_window_days),
        last_failed_at=now, card_brand="visa", amount=1000, currency="USD",
    )
    # The customer is assumed reachable on every channel of the policy that Tinko can send on here.
    channels = [c for c in (policy.channels or []) if c in enabled_channels()]
    history, card = PaymentHistory(), CardHistory()
    steps: list[Step] = []
    at = now
    end = ""
    for _ in range(MAX_STEPS):
        plan = plan_next(
            payment=payment, policy=policy, classification=classification, history=history, card=card,
            channels=channels, can_recharge=(True, ""), tz=tz, now=at,
        )
        if plan.attempt is None:
            end = plan.reason
            break
        attempt = plan.attempt
        steps.append(Step(attempt.scheduled_for.astimezone(tz), attempt.kind, attempt.channel, attempt.reason))
        history.last_sequence += 1
        history.last_step_at = attempt.scheduled_for
        if attempt.kind == AttemptKind.AUTO_RETRY:
            history.auto_attempts += 1
            card.attempts.append((payment.amount, payment.currency, attempt.scheduled_for))
        else:
            history.notifications += 1
            history.last_notification_at = attempt.scheduled_for
        at = attempt.scheduled_for
    return Preview(category=category, timezone=timezone, started=now.astimezone(tz), steps=steps, end=end)
