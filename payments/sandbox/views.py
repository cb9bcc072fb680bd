"""The sandbox PSP's hosted card form, at /pay/<token>/sandbox/ (see checkout.py)."""

from __future__ import annotations

import re

from django import forms
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from payments.models import SandboxChargeStatus
from payments.sandbox import checkout
from paypages import presentation
from paypages.security import pay_page
from paypages.views import closed_page, find_link, not_found, render_page


class CardForm(forms.Form):
    number = forms.CharField(label=_("Card number"), max_length=23)
    expiry = forms.CharField(label=_("Expiry (MM/YY)"), max_length=7)
    cvc = forms.CharField(label=_("Security code (CVC)"), max_length=4, min_length=3)
    key = forms.CharField(widget=forms.HiddenInput, max_length=80)

    def clean_number(self):
        number = re.sub(r"[\s-]", "", self.cleaned_data["number"])
        if not number.isdigit() or not 12 <= len(number) <= 19 or not checkout.luhn_ok(number):
            raise forms.ValidationError(_("Enter a valid card number."))
        return number

    def clean_expiry(self):
        match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", self.cleaned_data["expiry"])
        if not match or not 1 <= int(match.group(1)) <= 12:
            raise forms.ValidationError(_("Enter the expiry as MM/YY."))
        month, year = int(match.group(1)), int(match.group(2))
        year = year + 2000 if year < 100 else year
        today = timezone.now().date()
        if (year, month) < (today.year, today.month):
            raise forms.ValidationError(_("This card has expired."))
        return f"{month:02d}/{year % 100:02d}"

    def clean_cvc(self):
        cvc = self.cleaned_data["cvc"].strip()
        if not cvc.isdigit():
            raise forms.ValidationError(_("Enter the 3 or 4 digits on the back of the card."))
        return cvc


# What the customer reads after "Your card was declined.", by the decline code; a generic
# decline (do_not_honor, lost or stolen card) says no more than that.
_DECLINE_REASONS = {
    "insufficient_funds": _("There is not enough money on the card."),
    "expired_card": _("The card has expired."),
    "incorrect_cvc": _("The security code is incorrect."),
    "authentication_required": _("Your bank needs you to confirm this payment."),
    "processing_error": _("The bank could not process it; try again in a moment."),
}


# No CSRF token, like the pay page's own button (paypages/views.py): the
# browser sends "Origin: null" under no-referrer. A forged submission would
# need the signed session and the form's unguessable one-time key.
@csrf_exempt
@pay_page
@require_http_methods(["GET", "POST"])
def checkout_form(request, token):
    link = find_link(token)
    if link is None:
        return not_found(request)
    payment = link.payment
    language = presentation.choose_language(request, payment.customer)
    session = checkout.read_session(request.GET.get("session", ""), link=link)
    if session is None:
        return not_found(request)
    closed = closed_page(request, link, language)
    if closed is not None:
        return closed
    declined, declined_reason = False, ""
    if request.method == "POST":
        form = CardForm(request.POST)
        if form.is_valid():
            try:
                charge = checkout.charge_card(
                    payment=payment, link=link, number=form.cleaned_data["number"],
                    idempotency_key=form.cleaned_data["key"],
                )
            except ValueError:
                return not_found(request)
            if charge.status == SandboxChargeStatus.SUCCEEDED:
                return redirect(checkout.return_url(session.success_url, charge))
            declined = True
            declined_reason = _DECLINE_REASONS.get(charge.decline_code, "")
        # A fresh key: the next submission is a new charge attempt.
        data = request.POST.copy()
        data["key"] = checkout.new_form_key(link)
        form = CardForm(data) if not declined else CardForm(initial={"key": data["key"]})
        if not declined:
            form.is_valid()
    else:
        form = CardForm(initial={"key": checkout.new_form_key(link)})
    return render_page(
        request, "paypages/sandbox_checkout.html", link, language=language, status=400 if request.method == "POST" else 200,
        form=form, declined=declined, declined_reason=declined_reason, cancel_url=session.cancel_url,
    )
