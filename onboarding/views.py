"""The console's "Get started" wizard. Everyone sees where the organization stands; admins take the steps."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from onboarding import services
from onboarding.models import STEPS, Step, StepState
from recovery.models import Payment, RetryPolicy
from recovery.preview import preview_schedule
from tinko.console.forms import OrganizationSettingsForm
from tinko.models import Organization, Role
from tinko.services import update_organization
from tinko.tenancy import require_role, role_required

BRANDING_FIELDS = ["display_name", "accent_color", "logo_url", "support_email"]


class BrandingForm(OrganizationSettingsForm):
    # Only the branding part of the settings form; time zone and currency stay on Settings.
    timezone = None
    default_currency = None

    class Meta(OrganizationSettingsForm.Meta):
        fields = BRANDING_FIELDS


def _state_label(state: str) -> str:
    return str(StepState(state).label) if state in StepState.values else ""


def _page(request, progress, step, *, branding_form=None, status=200):
    organization = request.organization
    policy = RetryPolicy.objects.filter(organization=organization, is_default=True).first()
    test_payment = None
    if progress.test_reference:
        test_payment = Payment.objects.filter(organization=organization, reference=progress.test_reference).first()
    context = {
        "progress": progress,
        "step": step,
        "steps": [(s.value, s.label, progress.state(s), _state_label(progress.state(s))) for s in STEPS],
        "can_edit": request.membership.has_role(Role.ADMIN),
        "policy": policy,
        "preview": preview_schedule(policy=policy, category="insufficient_funds", timezone=organization.timezone,
                                    now=timezone.now()) if policy and step == Step.POLICY else None,
        "branding_form": branding_form or BrandingForm(instance=Organization.objects.get(pk=organization.pk)),
        "test_payment": test_payment,
    }
    return render(request, "onboarding/wizard.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required()
def wizard(request):
    organization = request.organization
    progress = services.progress_for(organization)
    step = request.GET.get("step") or request.POST.get("step") or progress.next_step() or Step.TEST
    if step not in STEPS:
        step = progress.next_step() or Step.TEST
    if request.method == "GET":
        return _page(request, progress, step)

    require_role(request, Role.ADMIN)
    action = request.POST.get("action", "")
    if action == "skip":
        services.mark_step(organization=organization, step=step, state=StepState.SKIPPED, actor=request.user, request=request)
    elif step == Step.PROVIDER and action == "sandbox":
        services.mark_step(organization=organization, step=step, state=StepState.DONE, actor=request.user,
                           request=request, provider_choice="sandbox")
    elif step == Step.POLICY and action == "use_policy":
        services.mark_step(organization=organization, step=step, state=StepState.DONE, actor=request.user, request=request)
    elif step == Step.BRANDING and action == "save_branding":
        form = BrandingForm(request.POST, instance=Organization.objects.get(pk=organization.pk))
        if not form.is_valid():
            return _page(request, progress, step, branding_form=form, status=400)
        update_organization(organization=organization, actor=request.user, request=request,
                            **{name: form.cleaned_data[name] for name in BRANDING_FIELDS})
        services.mark_step(organization=organization, step=step, state=StepState.DONE, actor=request.user, request=request)
    elif step == Step.TEST and action == "send_test":
        reference = services.send_test_failure(organization=organization, email=request.user.email)
        services.mark_step(organization=organization, step=step, state=StepState.DONE, actor=request.user,
                           request=request, test_reference=reference)
        messages.success(request, _("Test failure %(reference)s sent. It is in Payments now.") % {"reference": reference})
        return redirect(f"{request.path}?step={Step.TEST}")
    else:
        messages.error(request, _("That is not something this step can do."))
        return _page(request, progress, step, status=400)
    progress.refresh_from_db()
    following = progress.next_step()
    return redirect(f"{request.path}?step={following}" if following else f"{request.path}?step={Step.TEST}")
