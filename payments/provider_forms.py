from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from tinko.models import single_line_validator


class _AccountForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, validators=[single_line_validator],
        help_text=_("How this account appears in Tinko, e.g. “EU store”."),
    )


def _secret(label, help_text="", prefix=""):
    return forms.CharField(
        label=label, max_length=500, strip=True, help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class StripeAccountForm(_AccountForm):
    secret_key = _secret(_("Secret key"), _("sk_test_… or sk_live_… (a restricted rk_ key works too)."))
    webhook_secret = _secret(_("Webhook signing secret"), _("whsec_…, from the webhook endpoint you add in Stripe."))

    def secrets(self) -> dict:
        return {"secret_key": self.cleaned_data["secret_key"], "webhook_secret": self.cleaned_data["webhook_secret"]}


class RazorpayAccountForm(_AccountForm):
    key_id = forms.CharField(label=_("Key id"), max_length=100, help_text=_("rzp_test_… or rzp_live_…"),
                             validators=[single_line_validator])
    key_secret = _secret(_("Key secret"))
    webhook_secret = _secret(_("Webhook secret"), _("The secret you set on the webhook in Razorpay's dashboard."))

    def secrets(self) -> dict:
        return {"key_secret": self.cleaned_data["key_secret"], "webhook_secret": self.cleaned_data["webhook_secret"]}


class ReplaceStripeKeysForm(forms.Form):
    secret_key = _secret(_("New secret key"))
    webhook_secret = _secret(_("New webhook signing secret"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False

    def secrets(self) -> dict:
        return {"secret_key": self.cleaned_data["secret_key"], "webhook_secret": self.cleaned_data["webhook_secret"]}


class ReplaceRazorpayKeysForm(forms.Form):
    key_id = forms.CharField(label=_("New key id"), max_length=100, required=False, validators=[single_line_validator])
    key_secret = _secret(_("New key secret"))
    webhook_secret = _secret(_("New webhook secret"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False

    def secrets(self) -> dict:
        return {"key_secret": self.cleaned_data["key_secret"], "webhook_secret": self.cleaned_data["webhook_secret"]}
