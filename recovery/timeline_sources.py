"""The recovery engine's entries on a payment's timeline (recovery/timeline.py).

Failure reports with their classification, attempts as planned and as run,
pay links (created, opened, paid, revoked, expired) and the audit trail of
what people and the engine did to the payment. Registered in RecoveryConfig.ready().
"""

from __future__ import annotations

from payments.models import Channel
from recovery.models import Action, AttemptKind, AttemptStatus, Category, FailureEvent, LinkStatus, RecoveryAttempt, RecoveryLink
from recovery.timeline import TimelineEntry
from tinko.models import AuditEvent

_ATTEMPT_DONE_STATUS = {
    AttemptStatus.SUCCEEDED: "succeeded",
    AttemptStatus.FAILED: "failed",
    AttemptStatus.SKIPPED: "skipped",
    AttemptStatus.CANCELLED: "cancelled",
}


def _label(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def failure_entries(payment):
    for event in FailureEvent.objects.filter(payment_id=payment.pk).order_by("occurred_at", "pk"):
        codes = {
            "Source": event.get_source_display(),
            "Code": event.code,
            "Decline code": event.decline_code,
            "Advice code": event.advice_code,
            "Network advice code": event.network_advice_code,
            "Network decline code": event.network_decline_code,
            "Message": event.message,
        }
        yield TimelineEntry(
            at=event.occurred_at,
            kind="failure",
            title=f"Payment failed: {_label(Category, event.category).lower()}",
            detail=event.reason,
            status=_label(Action, event.action),
            data={k: v for k, v in codes.items() if v},
        )


def attempt_entries(payment):
    for attempt in RecoveryAttempt.objects.filter(payment_id=payment.pk).order_by("sequence"):
        is_message = attempt.kind == AttemptKind.NOTIFICATION
        what = f"Message by {_label(Channel, attempt.channel)}" if is_message else "Automatic re-charge"
        yield TimelineEntry(
            at=attempt.created_at,
            kind="message" if is_message else "attempt",
            title=f"Planned: {what} #{attempt.sequence} for {attempt.scheduled_for:%Y-%m-%d %H:%M} UTC",
            detail=attempt.reason,
            status="planned",
            data={"Scheduled for": f"{attempt.scheduled_for:%Y-%m-%d %H:%M:%S} UTC"},
        )
        if attempt.finished_at and attempt.status in _ATTEMPT_DONE_STATUS:
            yield TimelineEntry(
                at=attempt.finished_at,
                kind="message" if is_message else "attempt",
                title=f"{what} #{attempt.sequence} {_ATTEMPT_DONE_STATUS[attempt.status]}",
                detail=attempt.outcome,
                status=_ATTEMPT_DONE_STATUS[attempt.status],
            )


def link_entries(payment):
    for link in RecoveryLink.objects.filter(payment_id=payment.pk).order_by("created_at", "pk"):
        expires = {"Expires": f"{link.expires_at:%Y-%m-%d %H:%M} UTC"}
        yield TimelineEntry(at=link.created_at, kind="link", title=f"Pay link {link.pk} created", status="created", data=expires)
        if link.first_opened_at:
            yield TimelineEntry(
                at=link.first_opened_at, kind="link", title=f"Pay link {link.pk} opened by the customer", status="opened",
                data={"Opens": str(link.open_count), "Last opened": f"{link.last_opened_at:%Y-%m-%d %H:%M} UTC"},
            )
        if link.completed_at:
            yield TimelineEntry(at=link.completed_at, kind="link", title=f"Paid through pay link {link.pk}", status="completed")
        if link.revoked_at:
            yield TimelineEntry(at=link.revoked_at, kind="link", title=f"Pay link {link.pk} revoked", status="revoked")
        if link.status == LinkStatus.EXPIRED:
            yield TimelineEntry(at=link.expires_at, kind="link", title=f"Pay link {link.pk} expired", status="expired")


def audit_entries(payment):
    events = AuditEvent.objects.filter(
        organization_id=payment.organization_id, target_type="payments.payment", target_id=str(payment.pk)
    ).order_by("created_at", "pk")
    for event in events:
        yield TimelineEntry(
            at=event.created_at,
            kind="audit",
            title=event.action,
            detail=f"By {event.actor_label}",
            data={k.replace("_", " ").capitalize(): str(v) for k, v in (event.data or {}).items() if k != "reference"},
        )


SOURCES = (failure_entries, attempt_entries, link_entries, audit_entries)
