"""The payment timeline's PSP entries: webhooks that concerned the payment, and reconciliation checks."""

from __future__ import annotations

from payments.models import ReconciliationCheck, WebhookMessage
from recovery.timeline import TimelineEntry


def webhook_entries(payment):
    for message in WebhookMessage.objects.filter(payment=payment).order_by("received_at")[:100]:
        yield TimelineEntry(
            at=message.received_at, kind="webhook", title=f"{message.provider.capitalize()} webhook {message.event_type}",
            detail=message.error or message.result, status=message.status, data={"event": message.received_event_id},
        )
    for check in ReconciliationCheck.objects.filter(payment=payment).order_by("checked_at")[:100]:
        yield TimelineEntry(
            at=check.checked_at, kind="reconciliation", title="Checked with the payment provider",
            detail=check.detail, status="paid" if check.paid else ("unpaid" if check.paid is False else "error"),
        )
