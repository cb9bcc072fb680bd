"""The recovery engine's entries on a payment's timeline (recovery/timeline.py).

Failure reports with their classification, attempts as planned and as run,
pay links (created, opened, paid, revoked, expired) and the audit trail of
what people and the engine did to the payment. Registered in RecoveryConfig.ready().

Built per request, so text is translated into the reader's language and times
read in the organization's time zone (tinko.formatting).
"""

from __future__ import annotations

from datetime import datetime

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from recovery.labels import category_label, channel_label
from recovery.models import (
    AttemptKind,
    AttemptStatus,
    FailureEvent,
    LinkStatus,
    PaymentStatus,
    RecoveryAttempt,
    RecoveryLink,
)
from recovery.timeline import TimelineEntry
from tinko.formatting import format_money, format_when
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
            _("Source"): event.get_source_display(),
            _("Code"): event.code,
            _("Decline code"): event.decline_code,
            _("Advice code"): event.advice_code,
            _("Network advice code"): event.network_advice_code,
            _("Network decline code"): event.network_decline_code,
            _("Message"): event.message,
        }
        yield TimelineEntry(
            at=event.occurred_at,
            kind="failure",
            title=_("Payment failed: %(category)s") % {"category": category_label(event.category).lower()},
            detail=event.reason,
            status=event.action,
            data={k: v for k, v in codes.items() if v},
        )


def _attempt_what(attempt) -> str:
    if attempt.kind == AttemptKind.NOTIFICATION:
        return _("Message by %(channel)s") % {"channel": channel_label(attempt.channel)}
    return _("Automatic re-charge")


def attempt_entries(payment):
    for attempt in RecoveryAttempt.objects.filter(payment_id=payment.pk).order_by("sequence"):
        is_message = attempt.kind == AttemptKind.NOTIFICATION
        what = _attempt_what(attempt)
        yield TimelineEntry(
            at=attempt.created_at,
            kind="message" if is_message else "attempt",
            title=_("Planned: %(what)s #%(number)s for %(when)s") % {
                "what": what, "number": attempt.sequence, "when": format_when(attempt.scheduled_for),
            },
            detail=attempt.reason,
            status="planned",
        )
        if attempt.finished_at and attempt.status in _ATTEMPT_DONE_STATUS:
            outcome = {
                "succeeded": _("%(what)s #%(number)s succeeded"),
                "failed": _("%(what)s #%(number)s failed"),
                "skipped": _("%(what)s #%(number)s skipped"),
                "cancelled": _("%(what)s #%(number)s cancelled"),
            }[_ATTEMPT_DONE_STATUS[attempt.status]]
            yield TimelineEntry(
                at=attempt.finished_at,
                kind="message" if is_message else "attempt",
                title=outcome % {"what": what, "number": attempt.sequence},
                detail=attempt.outcome,
                status=_ATTEMPT_DONE_STATUS[attempt.status],
            )


def link_entries(payment):
    for link in RecoveryLink.objects.filter(payment_id=payment.pk).order_by("created_at", "pk"):
        number = {"number": link.pk}
        yield TimelineEntry(
            at=link.created_at, kind="link", title=_("Pay link #%(number)s created") % number, status="created",
            data={_("Works until"): format_when(link.expires_at)},
        )
        if link.first_opened_at:
            yield TimelineEntry(
                at=link.first_opened_at, kind="link", title=_("Pay link #%(number)s opened by the customer") % number,
                status="opened",
                data={_("Opens"): str(link.open_count), _("Last opened"): format_when(link.last_opened_at)},
            )
        if link.completed_at:
            yield TimelineEntry(at=link.completed_at, kind="link", title=_("Paid through pay link #%(number)s") % number,
                                status="completed")
        if link.revoked_at:
            yield TimelineEntry(at=link.revoked_at, kind="link", title=_("Pay link #%(number)s revoked") % number,
                                status="revoked")
        if link.status == LinkStatus.EXPIRED:
            yield TimelineEntry(at=link.expires_at, kind="link", title=_("Pay link #%(number)s expired") % number,
                                status="expired")


# What each audited action on a payment means, in words; an action missing here is shown by its code.
AUDIT_TITLES = {
    "payment.recovered": gettext_lazy("Recovered"),
    "payment.cancelled": gettext_lazy("Recovery cancelled"),
    "payment.retry_requested": gettext_lazy("Re-charge requested"),
    "payment.reported_paid": gettext_lazy("Reported paid outside Tinko"),
    "payment.card_updated": gettext_lazy("Card details updated"),
    "payment.card_changed": gettext_lazy("The customer changed their card"),
    "payment.possible_double_payment": gettext_lazy("Possible double payment"),
    "link.created": gettext_lazy("Pay link created"),
    "link.sent": gettext_lazy("Pay link sent to the customer"),
    "link.not_sent": gettext_lazy("Pay link created, not sent"),
}


def _audit_value(key: str, value, data: dict, payment):
    """(label, text) for one audit detail, or None to leave it out."""
    if value is None or value == "" or key in {"reference", "payment", "currency"}:
        return None
    if key == "amount":
        return _("Amount"), format_money(value, data.get("currency") or payment.currency)
    if key == "from":
        return _("Status before"), _label(PaymentStatus, value)
    if key == "channel":
        return _("Channel"), channel_label(value)
    if key == "attempt":
        return _("Attempt"), f"#{value}"
    if key == "link":
        return _("Pay link"), f"#{value}"
    if key == "outcome":
        return _("Outcome"), str(value)
    if key == "last4":
        return _("Card"), f"···· {value}"
    if key == "why":
        return _("Why"), str(value)
    if key in ("first_charge", "second_charge"):
        return (_("First charge") if key == "first_charge" else _("Second charge")), str(value)
    if key.endswith("_at") and isinstance(value, str):
        try:
            return key[:-3].replace("_", " ").capitalize(), format_when(datetime.fromisoformat(value))
        except ValueError:
            pass
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = "; ".join(f"{k}: {v}" for k, v in value.items())
    return key.replace("_", " ").capitalize(), str(value)


def audit_entries(payment):
    events = AuditEvent.objects.filter(
        organization_id=payment.organization_id, target_type="recovery.payment", target_id=str(payment.pk)
    ).order_by("created_at", "pk")
    for event in events:
        data = event.data or {}
        details = [_audit_value(key, value, data, payment) for key, value in data.items()]
        yield TimelineEntry(
            at=event.created_at,
            kind="audit",
            title=str(AUDIT_TITLES.get(event.action, event.action)),
            detail=_("By %(actor)s") % {"actor": event.actor_label},
            data=dict(item for item in details if item is not None),
        )


SOURCES = (failure_entries, attempt_entries, link_entries, audit_entries)
