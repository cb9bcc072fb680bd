"""The console's Retry policies pages: list, create, edit, make default, delete, and the live schedule preview.

Everyone reads; admins configure. Saving goes through recovery.services.save_policy
(the API's path): one default per organization, audited with what changed.
"""

from __future__ import annotations

from django.contrib import messages
from rest_framework.exceptions import ValidationError as ApiValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from recovery import services
from recovery.api.serializers import RetryPolicySerializer
from recovery.forms import PolicyForm, PreviewForm
from recovery.models import Category, RetryPolicy
from recovery.preview import preview_schedule
from tinko.models import Role
from tinko.tenancy import get_object_for_org, require_role, role_required


DEFAULT_PREVIEW = {"category": Category.INSUFFICIENT_FUNDS, "timezone": "Asia/Kolkata"}


def _preview(policy, data=None):
    """(the preview's own form: decline and time zone; the schedule, or None while that form is invalid)."""
    form = PreviewForm(data) if data is not None else PreviewForm(initial=DEFAULT_PREVIEW)
    values = DEFAULT_PREVIEW
    if form.is_bound:
        if not form.is_valid():
            return form, None
        values = form.cleaned_data
    return form, preview_schedule(policy=policy, category=values["category"], timezone=values["timezone"], now=timezone.now())


@require_GET
@role_required()
def policy_list(request):
    policies = RetryPolicy.objects.filter(organization=request.organization).order_by("-is_default", "name")
    return render(request, "recovery/console/policies.html", {
        "policies": policies, "can_edit": request.membership.has_role(Role.ADMIN),
    })


def _edit_page(request, form, policy, *, status=200):
    preview_policy = form.unsaved_policy() if form.is_bound and form.serializer else policy or RetryPolicy(organization=request.organization)
    preview_form, preview = _preview(preview_policy, request.POST if "category" in request.POST else None)
    return render(request, "recovery/console/policy_form.html", {
        "form": form, "policy": policy, "preview_form": preview_form, "preview": preview,
        "can_edit": request.membership.has_role(Role.ADMIN),
    }, status=status)


def _save(request, form):
    try:
        return services.save_policy(serializer=form.serializer, organization=request.organization, request=request)
    except ApiValidationError:  # the name was taken by a concurrent request after the form's check
        form.add_error("name", _("Another policy has this name."))
        return None


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def policy_create(request):
    if request.method == "POST":
        form = PolicyForm(request.POST, organization=request.organization)
        if form.is_valid():
            policy = _save(request, form)
            if policy is not None:
                messages.success(request, _("Policy “%(name)s” created.") % {"name": policy.name})
                return redirect("console:policy_edit", pk=policy.pk)
        return _edit_page(request, form, None, status=400)
    form = PolicyForm(organization=request.organization, instance=None,
                      initial=PolicyForm.initial_for(RetryPolicy(name="", channels=services.default_policy_channels())))
    return _edit_page(request, form, None)


@require_http_methods(["GET", "POST"])
@role_required()
def policy_edit(request, pk):
    policy = get_object_for_org(request.organization, RetryPolicy, pk=pk)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        form = PolicyForm(request.POST, organization=request.organization, instance=policy)
        if form.is_valid():
            saved = _save(request, form)
            if saved is not None:
                messages.success(request, _("Policy “%(name)s” saved.") % {"name": saved.name})
                return redirect("console:policy_edit", pk=saved.pk)
        return _edit_page(request, form, policy, status=400)
    return _edit_page(request, PolicyForm(organization=request.organization, instance=policy), policy)


@require_GET
@role_required()
def policy_preview(request):
    """The schedule for the form's current (unsaved) values; the page swaps it in as the form changes."""
    data = request.GET.copy()
    # The preview never saves: the name and default flag do not change the schedule.
    data["name"] = "\u200bpreview"
    data.pop("is_default", None)
    form = PolicyForm(data, organization=request.organization)
    if not form.is_valid():
        return render(request, "recovery/console/_preview.html", {"preview": None, "form_errors": form.errors})
    _form, preview = _preview(form.unsaved_policy(), data)
    return render(request, "recovery/console/_preview.html", {"preview": preview, "preview_errors": _form.errors})


@require_POST
@role_required(Role.ADMIN)
def policy_set_default(request, pk):
    policy = get_object_for_org(request.organization, RetryPolicy, pk=pk)
    serializer = RetryPolicySerializer(instance=policy, data={"is_default": True}, partial=True,
                                       context={"organization": request.organization})
    serializer.is_valid(raise_exception=True)
    services.save_policy(serializer=serializer, organization=request.organization, request=request)
    messages.success(request, _("“%(name)s” is now the default policy for new failures.") % {"name": policy.name})
    return redirect("console:policies")


@require_POST
@role_required(Role.ADMIN)
def policy_delete(request, pk):
    policy = get_object_for_org(request.organization, RetryPolicy, pk=pk)
    try:
        services.delete_policy(policy=policy, request=request)
    except services.RecoveryError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Policy “%(name)s” deleted; its payments now use the default.") % {"name": policy.name})
    return redirect("console:policies")
