"""Writes of the tenancy core. Views, forms and commands call these; they hold the rules.

Every function that changes who may do what leaves an AuditEvent.
"""

from __future__ import annotations

import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from tinko.formatting import format_when
from tinko.mail import inline_css, queue_email, site_context
from tinko.models import (
    ApiKey,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
    hash_token,
)

# --- Audit -----------------------------------------------------------------------


def client_ip(request) -> str | None:
    """The client's address, the way allauth's rate limits see it.

    Behind proxies set TRUSTED_PROXY_COUNT (how many append to X-Forwarded-For);
    otherwise only REMOTE_ADDR is believed, since clients can forge the header.
    """
    if request is None:
        return None
    from allauth.account.adapter import get_adapter

    try:
        return get_adapter(request).get_client_ip(request)
    except (PermissionDenied, ImproperlyConfigured):
        return None


def record_audit(
    *,
    organization: Organization,
    action: str,
    actor: User | ApiKey | None = None,
    target=None,
    data: dict | None = None,
    request=None,
) -> AuditEvent:
    """Append an audit event. ``action`` is dotted (``apikey.created``); ``target`` any model instance."""
    event = _audit_event(organization=organization, action=action, actor=actor, target=target, data=data,
                         request=request)
    event.save()
    return event


def record_audits(entries: list[dict]) -> list[AuditEvent]:
    """Append many audit events in one write (a worker's batch); each entry holds :func:`record_audit`'s arguments."""
    # bulk_create: one INSERT … SELECT FROM UNNEST on PostgreSQL, whatever the number of rows.
    return AuditEvent.objects.bulk_create([_audit_event(**entry) for entry in entries])


def _audit_event(*, organization, action, actor=None, target=None, data=None, request=None) -> AuditEvent:
    if actor is None and request is not None:
        actor = getattr(request, "auth", None) if isinstance(getattr(request, "auth", None), ApiKey) else None
        if actor is None and getattr(request, "user", None) is not None and request.user.is_authenticated:
            actor = request.user
    event = AuditEvent(
        organization=organization,
        action=action,
        data=data or {},
        ip_address=client_ip(request),
        request_id=getattr(request, "request_id", "") if request is not None else "",
    )
    if isinstance(actor, ApiKey):
        event.actor_api_key = actor
        event.actor_label = f"API key {actor.name} ({actor.display_prefix})"
    elif actor is not None:
        event.actor_user = actor
        event.actor_label = actor.email
    else:
        event.actor_label = "system"
    if target is not None:
        event.target_type = target._meta.label_lower
        event.target_id = str(target.pk)
        event.target_label = str(target)[:200]
    return event


# --- Organizations ------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def create_organization(*, name: str, owner: User, slug: str | None = None, **fields) -> Organization:
    """Create an organization with ``owner`` as its first owner, in one transaction."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("An organization needs a name.")})
    for attempt in range(5):
        try:
            with transaction.atomic():
                org = Organization(name=name, slug=slug or _unique_slug(name), **fields)
                org.full_clean()
                org.save()
                Membership.objects.create(user=owner, organization=org, role=Role.OWNER)
                record_audit(organization=org, action="organization.created", actor=owner, target=org)
                return org
        except IntegrityError:
            # Two signups with the same name picked the same free slug at once;
            # the loser picks again. A slug given by the caller is not retried.
            if slug or attempt == 4:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def update_organization(*, organization: Organization, actor: User, request=None, **fields) -> Organization:
    """Change settings/branding; audit records which fields changed, old and new values."""
    # Compare against the stored row under a lock: two admins saving at once
    # must each see the other's result, or the audit's "from" values lie.
    stored = Organization.objects.select_for_update().get(pk=organization.pk)
    changes = {}
    for field, value in fields.items():
        old = getattr(stored, field)
        if old != value:
            changes[field] = {"from": old, "to": value}
            setattr(stored, field, value)
    stored.full_clean()
    if changes:
        stored.save(update_fields=list(changes))
        record_audit(
            organization=stored, action="organization.updated", actor=actor, target=stored,
            data={"changes": changes}, request=request,
        )
    for field in fields:
        setattr(organization, field, getattr(stored, field))
    return stored


# --- API keys ----------------------------------------------------------------------------


def create_api_key(*, organization: Organization, name: str, created_by: User | None = None, request=None) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext. The plaintext is never stored; show it once."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the key a name, e.g. “Production server”.")})
    plaintext, prefix, key_hash = ApiKey.generate()
    with transaction.atomic():
        key = ApiKey.objects.create(
            organization=organization, name=name[:80], prefix=prefix, key_hash=key_hash, created_by=created_by
        )
        record_audit(organization=organization, action="apikey.created", actor=created_by, target=key, request=request)
    return key, plaintext


@transaction.atomic
def revoke_api_key(*, api_key: ApiKey, actor: User | None, request=None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        record_audit(organization=key.organization, action="apikey.revoked", actor=actor, target=key, request=request)
    return key


# --- Team -----------------------------------------------------------------------------------


class TeamError(ValidationError):
    """A team change the rules forbid (e.g. removing the last owner)."""


def _assert_can_grant(actor_membership: Membership, role: str) -> None:
    # Only owners hand out or take away ownership.
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise TeamError("Only an owner can make someone an owner.")


def invite_member(*, organization: Organization, email: str, role: str, invited_by: Membership, request=None) -> tuple[Invitation, str]:
    """Create an invitation and e-mail its link. Returns (invitation, token); the token is not stored."""
    email = User.objects.normalize_email((email or "").strip())
    if role not in Role.values:
        raise TeamError({"role": f"Unknown role {role!r}."})
    _assert_can_grant(invited_by, role)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise TeamError({"email": f"{email} is already a member of {organization}."})
    token = Invitation.new_token()
    with transaction.atomic():
        # Serialise invitations per organization, so two at once for one
        # address cannot both stay pending.
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        # A new invitation replaces any open one (pending or expired) for the same address.
        Invitation.objects.filter(
            organization=organization, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        invitation = Invitation(
            organization=organization,
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by=invited_by.user,
            expires_at=timezone.now() + timedelta(days=settings.TINKO_INVITATION_DAYS),
        )
        invitation.full_clean(exclude=["token_hash", "invited_by"])
        invitation.save()
        record_audit(
            organization=organization, action="member.invited", actor=invited_by.user, target=invitation,
            data={"email": email, "role": role}, request=request,
        )
        send_invitation_email(invitation=invitation, token=token)
    return invitation, token


def invitation_url(token: str) -> str:
    return settings.SITE_URL + reverse("invitation_accept", args=[token])


def send_invitation_email(*, invitation: Invitation, token: str) -> None:
    """Queue the invitation e-mail (sent by a worker after the transaction commits)."""
    organization = invitation.organization
    context = {
        "invitation": invitation,
        "organization": organization,
        "inviter": invitation.invited_by,
        "url": invitation_url(token),
        "role": Role(invitation.role).label,
        # The invitee's zone is unknown: the organization's, named.
        "expires": format_when(invitation.expires_at, tz=zoneinfo.ZoneInfo(organization.timezone or "UTC"), zone=True),
        **site_context(),
    }
    subject = render_to_string("tinko/email/invitation_subject.txt", context).strip()
    body = render_to_string("tinko/email/invitation_message.txt", context)
    html = inline_css(render_to_string("tinko/email/invitation_message.html", context))
    queue_email(subject=subject, body=body, to=[invitation.email], html=html)


def find_invitation(token: str) -> Invitation | None:
    """The invitation for a token, whatever its state (the caller shows expired/used pages)."""
    if not token or len(token) > 100:
        return None
    return Invitation.objects.select_related("organization", "invited_by").filter(token_hash=hash_token(token)).first()


@transaction.atomic
def accept_invitation(*, invitation: Invitation, user: User, request=None) -> Membership:
    """Join the invitation's organization. The user's e-mail must be the invited address."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != "pending":
        raise TeamError(f"This invitation is {invitation.status}.")
    if invitation.email.lower() != user.email.lower():
        raise TeamError(
            f"This invitation was sent to {invitation.email}; you are signed in as {user.email}."
        )
    if Membership.objects.filter(user=user, organization=invitation.organization).exists():
        # Accepting would silently ignore the invited role; say so instead.
        raise TeamError(f"You are already a member of {invitation.organization}.")
    membership = Membership.objects.create(user=user, organization=invitation.organization, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    record_audit(
        organization=invitation.organization, action="member.joined", actor=user, target=membership,
        data={"role": membership.role, "invitation": invitation.pk}, request=request,
    )
    return membership


@transaction.atomic
def revoke_invitation(*, invitation: Invitation, actor: User, request=None) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status == "pending":
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record_audit(organization=invitation.organization, action="invitation.revoked", actor=actor, target=invitation, request=request)
    return invitation


def _lock_owners(organization: Organization) -> list[Membership]:
    # Locking the owner rows serialises concurrent demotions/removals, so two
    # owners cannot demote each other at the same time and leave none.
    return list(Membership.objects.select_for_update().filter(organization=organization, role=Role.OWNER).order_by("pk"))


@transaction.atomic
def change_role(*, membership: Membership, role: str, actor: Membership, request=None) -> Membership:
    if role not in Role.values:
        raise TeamError({"role": f"Unknown role {role!r}."})
    owners = _lock_owners(membership.organization)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == role:
        return membership
    _assert_can_grant(actor, role)
    if membership.role == Role.OWNER:
        if actor.role != Role.OWNER:
            raise TeamError("Only an owner can change another owner's role.")
        if len(owners) == 1:
            raise TeamError("An organization needs at least one owner: make someone else an owner first.")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    record_audit(
        organization=membership.organization, action="member.role_changed", actor=actor.user, target=membership,
        data={"email": membership.user.email, "from": old, "to": role}, request=request,
    )
    return membership


@transaction.atomic
def remove_member(*, membership: Membership, actor: Membership, request=None) -> None:
    owners = _lock_owners(membership.organization)
    membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if membership.role == Role.OWNER:
        if actor.role != Role.OWNER:
            raise TeamError("Only an owner can remove an owner.")
        if len(owners) == 1:
            raise TeamError("The last owner cannot be removed: make someone else an owner first.")
    record_audit(
        organization=membership.organization, action="member.removed", actor=actor.user, target=membership,
        data={"email": membership.user.email, "role": membership.role}, request=request,
    )
    membership.delete()
