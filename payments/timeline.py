"""The payment timeline's PSP entries: webhooks that concerned the payment, and reconciliation checks."""

from __future__ import annotations

from django.utils.translation import gettext as _

from payments.models import Provider, ReconciliationCheck, WebhookMessage
from recovery.timeline import TimelineEntry


def _provider_name(code: str) -> str:
    try:
        return str(Provider(code).label)
    except ValueError:
        return code.capitalize()


def webhook_entries(payment):
    for message in WebhookMessage.objects.filter(payment=payment).order_by("received_at")[:100]:
        yield TimelineEntry(
            at=message.received_at, kind="webhook",
            title=_("%(provider)s webhook %(event)s") % {"provider": _provider_name(message.provider), "event": message.event_type},
            detail=message.error or message.result, status=message.status,
            data={_("Event id"): message.received_event_id} if message.received_event_id else {},
        )
    for check in ReconciliationCheck.objects.filter(payment=payment).order_by("checked_at")[:100]:
        yield TimelineEntry(
            at=check.checked_at, kind="reconciliation", title=_("Checked with the payment provider"),
            detail=check.detail, status="paid" if check.paid else ("unpaid" if check.paid is False else "error"),
        )
