"""Console → Payment providers: connect Stripe / Razorpay accounts, test them, pause them, watch their webhooks.

Everyone in the organization may look; admins and owners connect, test and pause.
Secrets go in through the forms and never come back out.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from payments import accounts, selectors
from payments.provider_forms import RazorpayAccountForm, ReplaceRazorpayKeysForm, ReplaceStripeKeysForm, StripeAccountForm
from payments.models import ProviderAccount, WebhookMessage
from tinko.models import Role
from tinko.tenancy import get_object_for_org, require_role, role_required

FORMS = {"stripe": StripeAccountForm, "razorpay": RazorpayAccountForm}
REPLACE_FORMS = {"stripe": ReplaceStripeKeysForm, "razorpay": ReplaceRazorpayKeysForm}


@require_http_methods(["GET", "POST"])
@role_required()
def providers(request):
    organization = request.organization
    can_manage = request.membership.has_role(Role.ADMIN)
    forms = {name: form_class(prefix=name) for name, form_class in FORMS.items()} if can_manage else {}
    status = 200
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        provider = request.POST.get("provider", "")
        if provider not in FORMS:
            messages.error(request, _("Choose Stripe or Razorpay."))
            return redirect("console:providers")
        form = forms[provider] = FORMS[provider](request.POST, prefix=provider)
        if form.is_valid():
            try:
                account = accounts.connect_account(
                    organization=organization, provider=provider, name=form.cleaned_data["name"],
                    key_id=form.cleaned_data.get("key_id", ""), secrets=form.secrets(), actor=request.user,
                    request=request,
                )
            except ValidationError as exc:
                for field, errors in exc.error_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, _("%(name)s is connected. Add its webhook URL at the provider.") % {"name": account.name})
                return redirect("console:providers")
        status = 400
    account_list = list(ProviderAccount.objects.filter(organization=organization).order_by("provider", "name"))
    if can_manage:
        for account in account_list:
            account.replace_form = REPLACE_FORMS[account.provider](prefix=f"keys-{account.pk}")
    retrying, retrying_examples = selectors.stripe_retrying(organization)
    context = {
        "accounts": account_list,
        "stripe_retrying": retrying,
        "stripe_retrying_examples": retrying_examples,
        "messages_in": WebhookMessage.objects.filter(organization=organization).select_related("account")
        .order_by("-received_at")[:25],
        "forms": forms,
        "can_manage": can_manage,
        "site_url": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "payments/providers.html", context, status=status)


@require_POST
@role_required(Role.ADMIN)
def provider_test(request, pk):
    account = get_object_for_org(request.organization, ProviderAccount, pk=pk)
    ok, detail = accounts.test_connection(account=account, actor=request.user, request=request)
    (messages.success if ok else messages.error)(request, detail)
    return redirect("console:providers")


@require_POST
@role_required(Role.ADMIN)
def provider_toggle(request, pk):
    account = get_object_for_org(request.organization, ProviderAccount, pk=pk)
    account = accounts.set_active(account=account, active=not account.is_active, actor=request.user, request=request)
    if account.is_active:
        messages.success(request, _("%(name)s is active again.") % {"name": account.name})
    else:
        messages.success(request, _("%(name)s is paused: its webhooks are refused and it re-charges nothing.") % {"name": account.name})
    return redirect("console:providers")


@require_POST
@role_required(Role.ADMIN)
def provider_keys(request, pk):
    account = get_object_for_org(request.organization, ProviderAccount, pk=pk)
    form = REPLACE_FORMS[account.provider](request.POST, prefix=f"keys-{account.pk}")
    if not form.is_valid():
        messages.error(request, _("The new keys were not saved: %(errors)s") % {"errors": " ".join(
            str(e) for errors in form.errors.values() for e in errors)})
        return redirect("console:providers")
    try:
        accounts.replace_secrets(
            account=account, secrets=form.secrets(), key_id=form.cleaned_data.get("key_id", ""),
            actor=request.user, request=request,
        )
    except ValidationError as exc:
        messages.error(request, _("The new keys were not saved: %(errors)s") % {"errors": " ".join(exc.messages)})
    else:
        messages.success(request, _("New keys for %(name)s are stored. Test the connection to check them.") % {"name": account.name})
    return redirect("console:providers")


urlpatterns = [
    path("", providers, name="providers"),
    path("<int:pk>/test/", provider_test, name="provider_test"),
    path("<int:pk>/toggle/", provider_toggle, name="provider_toggle"),
    path("<int:pk>/keys/", provider_keys, name="provider_keys"),
]
