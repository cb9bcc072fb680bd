"""Reads behind the console pages. Every query here is scoped to one organization."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from tinko.models import ApiKey, ApiRequestLog, AuditEvent, Invitation, Membership, Organization

_SUMMARY_LIMIT = 160


def members(organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user").order_by("created_at", "pk")


def pending_invitations(organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.pending().filter(organization=organization).select_related("invited_by")


def api_keys(organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).select_related("created_by")


def audit_events(organization: Organization, *, action: str = "", actor: str = "") -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(organization=organization).order_by("-created_at", "-id")
    if action:
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor_label=actor)
    return events


API_LOG_PAGE_SIZE = 50
_STATUS_CLASSES = {"2xx": (200, 300), "4xx": (400, 500), "5xx": (500, 600)}


def api_request_logs(organization: Organization, *, q: str = "", status: str = "", method: str = "",
                     key: int | None = None) -> QuerySet[ApiRequestLog]:
    """The organization's logged API requests matching the filters (each optional); bodies left unloaded."""
    logs = ApiRequestLog.objects.filter(organization=organization).defer("request_body", "response_body")
    q = (q or "").strip()
    if q.startswith("/"):
        logs = logs.filter(path__startswith=q)
    elif q:
        logs = logs.filter(Q(request_id=q) | Q(idempotency_key=q))
    if status in _STATUS_CLASSES:
        low, high = _STATUS_CLASSES[status]
        logs = logs.filter(status__gte=low, status__lt=high)
    if method:
        logs = logs.filter(method=method)
    if key:
        logs = logs.filter(api_key_id=key)
    return logs


def audit_actions(organization: Organization) -> list[str]:
    return list(
        AuditEvent.objects.filter(organization=organization).order_by("action").values_list("action", flat=True).distinct()
    )


def audit_actors(organization: Organization) -> list[str]:
    return list(
        AuditEvent.objects.filter(organization=organization)
        .exclude(actor_label="")
        .order_by("actor_label")
        .values_list("actor_label", flat=True)
        .distinct()
    )


def _short(value) -> str:
    if value in ("", None):
        return "—"
    return str(value)


def summarize_audit_data(data: dict) -> str:
    """One line for the log table: ``name: Acme → Acme Ltd; role: member → admin``."""
    if not isinstance(data, dict) or not data:
        return ""
    parts = []
    changes = data.get("changes")
    if isinstance(changes, dict):
        for field, change in changes.items():
            if isinstance(change, dict) and {"from", "to"} <= change.keys():
                parts.append(f"{field}: {_short(change['from'])} → {_short(change['to'])}")
            else:
                parts.append(f"{field}: {_short(change)}")
    rest = {k: v for k, v in data.items() if k != "changes"}
    if {"from", "to"} <= rest.keys():
        parts.append(f"{_short(rest.pop('from'))} → {_short(rest.pop('to'))}")
    parts.extend(f"{key}: {_short(value)}" for key, value in rest.items())
    summary = "; ".join(parts)
    return summary if len(summary) <= _SUMMARY_LIMIT else summary[: _SUMMARY_LIMIT - 1] + "…"


@dataclass(frozen=True)
class ChecklistItem:
    label: str
    done: bool
    url_name: str
    hint: str


@dataclass(frozen=True)
class Overview:
    member_count: int
    active_key_count: int
    pending_invitation_count: int
    recent_events: list[AuditEvent]
    checklist: list[ChecklistItem]


def overview(organization: Organization) -> Overview:
    member_count = Membership.objects.filter(organization=organization).count()
    active_key_count = ApiKey.objects.active().filter(organization=organization).count()
    pending_count = Invitation.objects.pending().filter(organization=organization).count()
    recent = list(audit_events(organization)[:5])
    for event in recent:
        event.summary = summarize_audit_data(event.data)
    has_branding = bool(
        organization.display_name
        or organization.logo_url
        or organization.support_email
        or organization.accent_color.lower() != Organization._meta.get_field("accent_color").default
    )
    checklist = [
        ChecklistItem(
            label=_("Create an API key"),
            done=active_key_count > 0,
            url_name="console:api_keys",
            hint=_("Your systems use it to report failed payments to Tinko."),
        ),
        ChecklistItem(
            label=_("Set up your branding"),
            done=has_branding,
            url_name="console:settings",
            hint=_("Display name, colour, logo and support address customers see."),
        ),
        ChecklistItem(
            label=_("Invite a teammate"),
            done=member_count > 1,
            url_name="console:team",
            hint=_("Give colleagues their own sign-in with the right role."),
        ),
    ]
    return Overview(
        member_count=member_count,
        active_key_count=active_key_count,
        pending_invitation_count=pending_count,
        recent_events=recent,
        checklist=checklist,
    )
