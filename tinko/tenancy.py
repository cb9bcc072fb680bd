"""The one way to reach an organization's objects, and the one way to check a role.

Every console view scopes its lookups with :func:`get_object_for_org` (404 for
anything outside the current organization, so nothing leaks whether an object
of another tenant exists) and guards itself with :func:`role_required` (or,
inside a view, :func:`require_role`).
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404
from django.shortcuts import redirect

from tinko.models import Membership, Organization, Role

SESSION_KEY = "tinko_organization_id"


def get_object_for_org(organization: Organization, model_or_queryset, **lookup):
    """Fetch one object of ``organization``; Http404 for a missing object or one of another org.

    The queryset must have an ``organization`` foreign key, or pass an
    ``org_path`` keyword naming the lookup to it (e.g. ``org_path="payment__organization"``).
    """
    org_path = lookup.pop("org_path", "organization")
    queryset = (
        model_or_queryset._default_manager.all()
        if isinstance(model_or_queryset, type) and issubclass(model_or_queryset, models.Model)
        else model_or_queryset
    )
    try:
        return queryset.get(**{org_path: organization}, **lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404("No such object in this organization.") from None


def memberships_for(user):
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")


def resolve_membership(request) -> Membership | None:
    """The membership for the organization chosen in the session, or the user's first one.

    Also keeps every membership of the user on ``request.memberships`` (in
    switcher order): the org switcher on each console page needs the same list,
    and this is the one query that loads it.
    """
    user = request.user
    if not user.is_authenticated:
        request.memberships = []
        return None
    memberships = request.memberships = list(memberships_for(user))
    if not memberships:
        return None
    chosen = request.session.get(SESSION_KEY)
    for membership in memberships:
        if membership.organization_id == chosen:
            return membership
    request.session[SESSION_KEY] = memberships[0].organization_id
    return memberships[0]


def switch_organization(request, organization_id: int) -> Membership:
    """Make ``organization_id`` current for this session; 404 unless the user is a member."""
    try:
        membership = memberships_for(request.user).get(organization_id=organization_id)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise Http404("You are not a member of that organization.") from None
    request.session[SESSION_KEY] = membership.organization_id
    request.membership = membership
    request.organization = membership.organization
    return membership


def require_role(request, role: str) -> None:
    """PermissionDenied (403) unless the current membership has at least ``role``.

    For checks inside a view, e.g. a page every member may read whose POST
    needs a higher role; whole views use :func:`role_required`.
    """
    membership = getattr(request, "membership", None)
    if membership is None or not membership.has_role(role):
        raise PermissionDenied(f"This needs the {Role(role).label} role or higher.")


def role_required(role: str = Role.VIEWER):
    """Decorate a console view: login required, a current organization, and at least ``role``.

    Anonymous users go to the login page; a user without any organization is
    sent to create one; a member below ``role`` gets 403.
    """
    Role(role)  # fail at import time on a typo

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = getattr(request, "membership", None)
            if membership is None:
                return redirect("console:organization_create")
            require_role(request, role)
            return view(request, *args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator
