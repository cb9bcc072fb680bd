"""Planning stored payments: read their histories, ask the planner, write the plans.

The planner (recovery/planner.py) decides from what it is given and touches no
database; this module is the one place that feeds it stored payments (ingestion
and the runner call ``plan_payments``) and writes what it decided through
recovery.transitions and the bulk writer.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from recovery import history as history_loader
from recovery import transitions
from recovery.messaging import enabled_channels, reachable_channels
from recovery.models import RecoveryAttempt
from recovery.payday import NO_TIMING
from recovery.planner import plan_next
from recovery.psp import connected_accounts, recharge_provider
from tinko import bulk

# The payment fields plan_payments sets: what its callers save.
PLANNED_FIELDS = ("status", "status_reason", "limit_code", "category")


def plan_payments(*, organization, payments, latest, now, created=(), writes=None,
                  cards=None) -> dict[str, RecoveryAttempt]:
    """Cancel what was scheduled and plan the next attempt for each payment (its latest event decides).

    Payments with an attempt queued or running are left alone: that attempt's
    outcome re-plans them, and planning a second re-charge beside it could
    charge the customer twice.

    ``cards``: the payments' card histories (history.card_histories) when the caller has read them already
    (a single new payment's report, in its lookup statement); read here otherwise.
    """
    ids = [p.pk for p in payments if p.reference not in created]
    # Cancel first, then read the history: a step that was only scheduled neither counts as done
    # nor against the card networks' limits, so the new plan takes it up again.
    if ids:
        transitions.cancel_attempts(payment_ids=ids, now=now, outcome="Replaced by a new plan after a new failure.")
    histories = history_loader.payment_histories(ids)
    if cards is None:
        cards = history_loader.card_histories(
            organization_id=organization.pk, card_keys=[p.card_key for p in payments], now=now
        )
    org_tz = ZoneInfo(organization.timezone)
    timings = history_loader.customer_timings(customers=[p.customer for p in payments], now=now, default_tz=org_tz)
    accounts = connected_accounts(payments)
    enabled = enabled_channels()  # once for the batch: the deployment's settings, not the payment's
    new_attempts = {}
    for payment in payments:
        event = latest[payment.reference]
        payment.category = event.category
        history = histories[payment.pk]
        if history.busy:
            payment.status_reason = "An attempt is in progress; its outcome decides what happens next."
            continue
        customer = payment.customer
        tz = ZoneInfo(customer.timezone) if customer and customer.timezone else org_tz
        card_key = payment.card_key or f"payment:{payment.pk}"
        plan = plan_next(
            payment=payment,
            policy=payment.policy,
            classification=event,
            history=history,
            card=cards[card_key],
            channels=reachable_channels(policy=payment.policy, customer=customer, enabled=enabled),
            can_recharge=_can_recharge(payment, accounts),
            tz=tz,
            now=now,
            timing=timings.get(payment.customer_id, NO_TIMING),
        )
        transitions.plan(payment, plan.status, plan.reason)
        if plan.limit_code:
            payment.limit_code = plan.limit_code
        if plan.attempt is not None:
            attempt = bulk.build(
                RecoveryAttempt,
                organization_id=organization.pk,
                payment_id=payment.pk,
                sequence=history.last_sequence + 1,
                kind=plan.attempt.kind,
                channel=plan.attempt.channel,
                message_kind=plan.attempt.message_kind,
                scheduled_for=plan.attempt.scheduled_for,
                reason=plan.attempt.reason,
                limit_code=plan.attempt.limit_code,
                card_key=card_key,
                amount=payment.amount,
                currency=payment.currency,
                created_at=now,
            )
            new_attempts[payment.reference] = attempt
            if attempt.kind == "auto_retry":
                cards[card_key].attempts.append((attempt.amount, attempt.currency, attempt.scheduled_for))
    if writes is not None:
        writes.add(RecoveryAttempt, list(new_attempts.values()))
    elif new_attempts:
        RecoveryAttempt.objects.bulk_create(new_attempts.values())
    return new_attempts


def _can_recharge(payment, accounts=None) -> tuple[bool, str]:
    provider, why = recharge_provider(payment, accounts)
    return provider is not None, why
