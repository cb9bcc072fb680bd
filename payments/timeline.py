"""The payment timeline's PSP entries: webhooks that concerned the payment, and reconciliation checks."""

from __future__ import annotations

from django.db.models import Q

from payments.models import ReconciliationCheck, WebhookMessage
from recovery.timeline import TimelineEntry


def webhook_entries(payment):
    ids = [i for i in {payment.reference, payment.provider_payment_id} if i]
    if payment.provider_account_id and ids:
        # The PSP's ids appear in the body of every event about the payment.
        messages = WebhookMessage.objects.filter(account_id=payment.provider_account_id, signature_valid=True)
        match = Q()
        for object_id in ids:
            match |= Q(body__contains=f'"{object_id}"')
        for message in messages.filter(match).order_by("received_at")[:50]:
            yield TimelineEntry(
                at=message.received_at, kind="webhook", title=f"{message.provider.capitalize()} webhook {message.event_type}",
                detail=message.error or message.result, status=message.status,
                data={"event": message.received_event_id},
            )
    for check in ReconciliationCheck.objects.filter(payment=payment).order_by("checked_at")[:50]:
        yield TimelineEntry(
            at=check.checked_at, kind="reconciliation", title="Checked with the payment provider",
            detail=check.detail, status="paid" if check.paid else ("unpaid" if check.paid is False else "error"),
        )
