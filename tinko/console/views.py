"""Console pages. Thin: forms validate, tinko.services changes and audits, selectors read.

Every object is fetched through get_object_for_org (404 outside the current
organization) and every view is guarded by role_required; pages everyone in
the organization may read check the stricter role for their POSTs with require_role.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tinko import services
from tinko.api.request_log import pretty
from tinko.console import selectors
from tinko.console.forms import (
    ApiKeyCreateForm,
    ApiLogFilterForm,
    AuditFilterForm,
    InviteForm,
    OrganizationCreateForm,
    OrganizationSettingsForm,
    RoleForm,
)
from tinko.models import ApiKey, ApiRequestLog, Invitation, Membership, Organization, Role
from tinko.pagination import keyset_context
from tinko.tenancy import get_object_for_org, require_role, role_required, switch_organization

AUDIT_PAGE_SIZE = 50


def _add_errors(form, exc: ValidationError) -> None:
    """Attach a service's ValidationError to the form, on the field it names when the form has it."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _is_row_swap(request) -> bool:
    # htmx buttons that replace one table row; boosted forms want whole pages.
    return bool(request.htmx) and not request.htmx.boosted


# --- Overview and organizations ---------------------------------------------------------


@require_GET
@role_required()
def home(request):
    return render(request, "console/home.html", {"overview": selectors.overview(request.organization)})


@login_required
@require_http_methods(["GET", "POST"])
def organization_create(request):
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.create_organization(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            switch_organization(request, organization.pk)
            messages.success(request, _("%(name)s is ready. You are its owner.") % {"name": organization.name})
            return redirect("console:home")
    return render(request, "console/organization_create.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_POST
def switch(request):
    membership = switch_organization(request, request.POST.get("organization"))
    messages.info(request, _("You are now working in %(name)s.") % {"name": membership.organization.name})
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(next_url)
    return redirect("console:home")


@require_http_methods(["GET", "POST"])
@role_required()
def settings(request):
    can_edit = request.membership.has_role(Role.ADMIN)
    # A copy, so a rejected form never alters the organization this request shows elsewhere.
    draft = Organization.objects.get(pk=request.organization.pk)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        form = OrganizationSettingsForm(request.POST, instance=draft)
        if form.is_valid():
            # The draft already holds the new values; the service compares against the stored ones.
            target = Organization.objects.get(pk=request.organization.pk)
            try:
                services.update_organization(
                    organization=target, actor=request.user, request=request,
                    **{name: form.cleaned_data[name] for name in form.Meta.fields},
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, _("Settings saved."))
                return redirect("console:settings")
    else:
        form = OrganizationSettingsForm(instance=draft, read_only=not can_edit)
    return render(request, "console/settings.html", {"form": form, "can_edit": can_edit}, status=400 if form.errors else 200)


# --- Team ----------------------------------------------------------------------------------


def _team_page(request, *, invite_form=None, status=200):
    organization = request.organization
    is_owner = request.membership.role == Role.OWNER
    context = {
        "members": selectors.members(organization),
        "invitations": selectors.pending_invitations(organization),
        "is_owner": is_owner,
        "invite_form": invite_form or (InviteForm() if is_owner else None),
        "role_choices": Role.choices,
    }
    return render(request, "console/team.html", context, status=status)


@require_GET
@role_required()
def team(request):
    return _team_page(request)


@require_POST
@role_required(Role.OWNER)
def team_invite(request):
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation, _token = services.invite_member(
                organization=request.organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.membership,
                request=request,
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": invitation.email})
            return redirect("console:team")
    return _team_page(request, invite_form=form, status=400)


@require_POST
@role_required(Role.OWNER)
def invitation_revoke(request, pk):
    invitation = get_object_for_org(request.organization, Invitation.objects.select_related("invited_by"), pk=pk)
    invitation = services.revoke_invitation(invitation=invitation, actor=request.user, request=request)
    if _is_row_swap(request):
        return render(request, "console/_invitation_row.html", {"invitation": invitation, "is_owner": True})
    messages.success(request, _("The invitation for %(email)s was revoked.") % {"email": invitation.email})
    return redirect("console:team")


@require_POST
@role_required(Role.OWNER)
def member_role(request, pk):
    membership = get_object_for_org(request.organization, Membership.objects.select_related("user"), pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the roles owner, admin, member or viewer."))
        return redirect("console:team")
    try:
        membership = services.change_role(
            membership=membership, role=form.cleaned_data["role"], actor=request.membership, request=request
        )
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(
            request,
            _("%(email)s is now %(role)s.") % {"email": membership.user.email, "role": membership.get_role_display()},
        )
    return redirect("console:team")


@require_POST
@role_required()
def member_remove(request, pk):
    """Owners remove anyone; everyone else may only remove themselves (leave)."""
    membership = get_object_for_org(request.organization, Membership.objects.select_related("user"), pk=pk)
    leaving = membership.pk == request.membership.pk
    if not leaving:
        require_role(request, Role.OWNER)
    try:
        services.remove_member(membership=membership, actor=request.membership, request=request)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect("console:team")
    if leaving:
        messages.success(request, _("You left %(name)s.") % {"name": request.organization.name})
        return redirect("console:home")
    messages.success(request, _("%(email)s was removed.") % {"email": membership.user.email})
    return redirect("console:team")


# --- Developers: API keys -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required()
def api_keys(request):
    can_manage = request.membership.has_role(Role.ADMIN)
    form = ApiKeyCreateForm() if can_manage else None
    created = plaintext = None
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        form = ApiKeyCreateForm(request.POST)
        if form.is_valid():
            try:
                created, plaintext = services.create_api_key(
                    organization=request.organization, name=form.cleaned_data["name"],
                    created_by=request.user, request=request,
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                form = ApiKeyCreateForm()
    context = {
        "keys": selectors.api_keys(request.organization),
        "can_manage": can_manage,
        "form": form,
        "created": created,
        # Rendered into this response only: never stored, redirected with, or put in a message.
        "plaintext": plaintext,
    }
    response = render(request, "console/api_keys.html", context, status=400 if form is not None and form.errors else 200)
    if plaintext:
        add_never_cache_headers(response)
        response["Cache-Control"] += ", no-store"
    return response


@require_POST
@role_required(Role.ADMIN)
def api_key_revoke(request, pk):
    key = get_object_for_org(request.organization, ApiKey.objects.select_related("created_by"), pk=pk)
    key = services.revoke_api_key(api_key=key, actor=request.user, request=request)
    if _is_row_swap(request):
        return render(request, "console/_api_key_row.html", {"key": key, "can_manage": True})
    messages.success(request, _("The key %(name)s was revoked; requests using it now fail.") % {"name": key.name})
    return redirect("console:api_keys")


# --- Audit log -------------------------------------------------------------------------------


@require_GET
@role_required()
def audit_log(request):
    organization = request.organization
    form = AuditFilterForm(
        request.GET or None,
        actions=selectors.audit_actions(organization),
        actors=selectors.audit_actors(organization),
    )
    filters = {"action": "", "actor": ""}
    if form.is_bound:
        form.is_valid()
        # A stale or foreign value filters nothing rather than failing the page.
        filters = {name: form.cleaned_data.get(name, "") for name in filters}
    page = Paginator(selectors.audit_events(organization, **filters), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for event in page.object_list:
        event.summary = selectors.summarize_audit_data(event.data)
    return render(request, "console/audit_log.html", {"form": form, "page": page, "filtered": any(filters.values())})


@require_GET
@role_required()
def api_logs(request):
    """Developers → Logs: the organization's API requests, newest first, filterable (tinko/api/request_log.py)."""
    organization = request.organization
    form = ApiLogFilterForm(request.GET or None, keys=selectors.api_keys(organization).order_by("name"))
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    logs = selectors.api_request_logs(organization, **{k: v for k, v in filters.items() if v})
    return render(request, "console/api_logs.html", {
        "form": form, "filtered": any(filters.values()),
        **keyset_context(request, logs, size=selectors.API_LOG_PAGE_SIZE),
    }, status=400 if form.errors else 200)


@require_GET
@role_required()
def api_log_detail(request, pk):
    log = get_object_for_org(request.organization, ApiRequestLog.objects.select_related("api_key"), pk=pk)
    return render(request, "console/api_log_detail.html", {
        "log": log, "request_body": pretty(log.request_body), "response_body": pretty(log.response_body),
    })
