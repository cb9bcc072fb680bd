"""What notifications does when the recovery engine announces something (recovery.signals).

Connected in NotificationsConfig.ready. Each merchant webhook event is written
(WebhookMessage and its deliveries) in the transaction that caused it and sent
by a worker after commit (notifications.webhooks.emit_many), as before the
engine stopped calling this app itself.
"""

from __future__ import annotations

import functools

from notifications.tracking import count_link_click
from notifications.webhooks import emit_many, payment_event, payment_event_item, payments_event
from recovery import signals
from recovery.models import AttemptKind, AttemptStatus


def on_recovery_started(sender, *, organization_id, payments, **kwargs) -> None:
    payments_event(organization_id, payments, "payment.recovery_started")


def _payment_webhook(payment, event_type: str, batch=None, **extra) -> None:
    """One merchant webhook event for ``payment``: written now, or with the batch's others of its organization."""
    if batch is None:
        payment_event(payment, event_type, **extra)
        return
    organization_id = payment.organization_id
    batch.defer(("notifications.webhooks", organization_id),
                functools.partial(_write_webhooks, organization_id), payment_event_item(payment, event_type, **extra))


def _write_webhooks(organization_id: int, events: list) -> None:
    emit_many(organization_id=organization_id, events=events)


def on_attempt_finished(sender, *, payment, attempt, code="", batch=None, **kwargs) -> None:
    # The merchant hears about re-charges that ended with the PSP's answer; messages have their own tracking.
    if attempt.kind != AttemptKind.AUTO_RETRY or attempt.status not in (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED):
        return
    _payment_webhook(payment, f"attempt.{attempt.status}", batch, attempt={
        "sequence": attempt.sequence, "amount": attempt.amount, "currency": attempt.currency,
        "outcome": attempt.outcome, "code": code or None,
    })


def on_payment_recovered(sender, *, payment, attempt=None, batch=None, **kwargs) -> None:
    _payment_webhook(payment, "payment.recovered", batch, attempt=attempt.sequence if attempt else None)


def on_recovery_exhausted(sender, *, payments, **kwargs) -> None:
    by_org: dict[int, list] = {}
    for payment in payments:
        by_org.setdefault(payment.organization_id, []).append(payment)
    for organization_id, group in by_org.items():
        payments_event(organization_id, group, "payment.exhausted")


def on_link_opened(sender, *, link, at, **kwargs) -> None:
    count_link_click(link, at=at)


def on_possible_double_payment(sender, *, payment, first_charge, second_charge, amount, currency, **kwargs) -> None:
    payment_event(payment, "payment.possible_double_payment", double_payment={
        "first_charge": first_charge, "second_charge": second_charge, "amount": amount, "currency": currency,
    })


def connect() -> None:
    for signal, receiver in (
        (signals.recovery_started, on_recovery_started),
        (signals.attempt_finished, on_attempt_finished),
        (signals.payment_recovered, on_payment_recovered),
        (signals.recovery_exhausted, on_recovery_exhausted),
        (signals.link_opened, on_link_opened),
        (signals.possible_double_payment, on_possible_double_payment),
    ):
        signal.connect(receiver, dispatch_uid=f"notifications.{receiver.__name__}")
