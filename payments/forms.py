"""Forms of the console's payment pages."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.utils.translation import gettext_lazy as _

from payments.models import Provider, WebhookStatus
from payments.providers import provider_choices
from recovery.models import Category, Channel, PaymentStatus


def _any(choices):
    return [("", _("Any"))] + list(choices)


class PaymentFilterForm(forms.Form):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=200,
        help_text=_("A reference (or its beginning), a customer's e-mail address, or a card's last four digits."),
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Reference, e-mail or card’s last 4")}),
    )
    status = forms.ChoiceField(label=_("Status"), required=False, choices=_any(PaymentStatus.choices))
    category = forms.ChoiceField(label=_("Decline category"), required=False, choices=_any(Category.choices))
    provider = forms.ChoiceField(label=_("Provider"), required=False, choices=lambda: _any(provider_choices()))
    channel = forms.ChoiceField(
        label=_("Recovered through"), required=False,
        choices=_any([*Channel.choices, ("link", _("Pay link"))]),
    )
    date_from = forms.DateField(label=_("Failed from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("Failed until"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, timezone: str = "UTC", **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = ZoneInfo(timezone or "UTC")

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data

    def filters(self) -> dict:
        """Keyword arguments for payments.selectors.filtered_payments; dates are whole days in the organization's time zone."""
        data = self.cleaned_data
        start = data.get("date_from")
        end = data.get("date_to")
        return {
            "q": data.get("q", ""),
            "status": data.get("status", ""),
            "category": data.get("category", ""),
            "provider": data.get("provider", ""),
            "channel": data.get("channel", ""),
            "date_from": datetime.combine(start, time.min, tzinfo=self.tz) if start else None,
            "date_to": datetime.combine(end + timedelta(days=1), time.min, tzinfo=self.tz) if end else None,
        }


class CustomerFilterForm(forms.Form):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=200,
        help_text=_("An e-mail address, a phone number (+…), your customer id, or the beginning of a name."),
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("E-mail, phone, id or name")}),
    )
    state = forms.ChoiceField(
        label=_("Payments"), required=False,
        choices=[("", _("Any")), ("open", _("Being recovered")), ("recovered", _("Recovered"))],
    )


class WebhookLogFilterForm(forms.Form):
    """Developers → Logs, provider webhooks."""

    q = forms.CharField(
        label=_("Search"), required=False, max_length=255,
        help_text=_("A provider's event id (evt_…), exactly, or an event type such as payment_intent.payment_failed."),
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Event id or type")}),
    )
    status = forms.ChoiceField(label=_("Status"), required=False, choices=_any(WebhookStatus.choices))
    provider = forms.ChoiceField(label=_("Provider"), required=False,
                                 choices=_any([(Provider.STRIPE.value, Provider.STRIPE.label),
                                               (Provider.RAZORPAY.value, Provider.RAZORPAY.label)]))
