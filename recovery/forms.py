"""The console's retry-policy form: people's units (hours, days) in, the API's validation and shape out.

Validation is the REST API's own (RetryPolicySerializer), so a policy the
console accepts is exactly one the API accepts, and the two never drift.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from payments.models import Channel
from recovery.api.serializers import CHANNEL_CHOICES, RetryPolicySerializer
from recovery.models import Category, RetryPolicy
from tinko.models import known_timezones

HOUR = 3600
OVERRIDE_FIELDS = [
    ("max_retries", _("Retries"), "max_retries", 1),
    ("initial_delay_hours", _("First delay (h)"), "initial_delay_seconds", HOUR),
    ("backoff_multiplier", _("Backoff ×"), "backoff_multiplier", None),
    ("max_delay_hours", _("Longest delay (h)"), "max_delay_seconds", HOUR),
]
# Form field → the serializer's field and the factor to seconds (None: taken as is).
FIELD_MAP = {
    "initial_delay_hours": ("initial_delay_seconds", HOUR),
    "max_delay_hours": ("max_delay_seconds", HOUR),
    "notification_interval_hours": ("notification_interval_seconds", HOUR),
}
RETRY_CATEGORIES = [c for c in Category if c not in (Category.FRAUD_OR_STOLEN, Category.DO_NOT_RETRY)]


def _hours(seconds) -> Decimal:
    return (Decimal(int(seconds)) / HOUR).quantize(Decimal("0.01")).normalize()


class PolicyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)
    max_retries = forms.IntegerField(label=_("Automatic retries"), min_value=0, max_value=20)
    initial_delay_hours = forms.DecimalField(label=_("First retry after (hours)"), min_value=Decimal("0.02"), decimal_places=2)
    backoff_multiplier = forms.DecimalField(label=_("Backoff multiplier"), min_value=1, max_value=10, decimal_places=2)
    max_delay_hours = forms.DecimalField(label=_("Longest wait between retries (hours)"), min_value=Decimal("0.02"), decimal_places=2)
    recovery_window_days = forms.IntegerField(label=_("Recovery window (days)"), min_value=1, max_value=60)
    channels = forms.MultipleChoiceField(
        label=_("Message channels"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(c, Channel(c).label) for c in CHANNEL_CHOICES],
    )
    max_notifications = forms.IntegerField(label=_("Messages at most"), min_value=0, max_value=10)
    notification_interval_hours = forms.DecimalField(label=_("Between messages (hours)"), min_value=1, decimal_places=2)
    quiet_hours_start = forms.TimeField(label=_("Quiet hours from"), required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    quiet_hours_end = forms.TimeField(label=_("Quiet hours until"), required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    payday_alignment = forms.BooleanField(label=_("Retry insufficient funds on paydays"), required=False)
    payday_days = forms.CharField(label=_("Paydays (days of the month)"), required=False, help_text=_("e.g. 1, 15 (31 = the month's last day)"))
    notify_on_hard_decline = forms.BooleanField(label=_("Send one message after a hard decline"), required=False)
    holdout_percent = forms.IntegerField(
        label=_("Hold out (% of new failures)"), min_value=0, max_value=50, initial=0, required=False,
        help_text=_("A random share of new failures gets no recovery at all, so the dashboard can show what Tinko adds. 0 turns it off."),
    )
    is_default = forms.BooleanField(label=_("Default policy"), required=False)

    def __init__(self, *args, organization, instance: RetryPolicy | None = None, **kwargs):
        self.organization = organization
        self.instance = instance
        if instance is not None and not kwargs.get("initial") and not args:
            kwargs["initial"] = self.initial_for(instance)
        super().__init__(*args, **kwargs)
        for category in RETRY_CATEGORIES:
            for name, label, _source, _factor in OVERRIDE_FIELDS:
                field_class = forms.IntegerField if name == "max_retries" else forms.DecimalField
                self.fields[f"ov_{category.value}_{name}"] = field_class(
                    label=f"{category.label}: {label}", required=False, min_value=0,
                )
        self.serializer = None

    @staticmethod
    def initial_for(policy: RetryPolicy) -> dict:
        initial = {
            "name": policy.name, "max_retries": policy.max_retries,
            "initial_delay_hours": _hours(policy.initial_delay_seconds), "backoff_multiplier": policy.backoff_multiplier,
            "max_delay_hours": _hours(policy.max_delay_seconds), "recovery_window_days": policy.recovery_window_days,
            "channels": list(policy.channels or []), "max_notifications": policy.max_notifications,
            "notification_interval_hours": _hours(policy.notification_interval_seconds),
            "quiet_hours_start": policy.quiet_hours_start, "quiet_hours_end": policy.quiet_hours_end,
            "payday_alignment": policy.payday_alignment,
            "payday_days": ", ".join(str(d) for d in policy.payday_days or []),
            "notify_on_hard_decline": policy.notify_on_hard_decline, "holdout_percent": policy.holdout_percent,
            "is_default": policy.is_default,
        }
        for category, override in (policy.category_overrides or {}).items():
            for name, _label, source, factor in OVERRIDE_FIELDS:
                if source in override:
                    value = override[source]
                    initial[f"ov_{category}_{name}"] = _hours(value) if factor == HOUR else value
        return initial

    def override_rows(self):
        """(category label, [bound fields]) per category, for the overrides table."""
        return [
            (category.label, [self[f"ov_{category.value}_{name}"] for name, *_ in OVERRIDE_FIELDS])
            for category in RETRY_CATEGORIES
        ]

    def clean_holdout_percent(self):
        return self.cleaned_data.get("holdout_percent") or 0

    def clean_payday_days(self):
        raw = self.cleaned_data.get("payday_days", "")
        try:
            return [int(part) for part in raw.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError(_("List days of the month as numbers, e.g. 1, 15.")) from None

    def api_data(self) -> dict:
        """The cleaned values in the API's shape (seconds, lists, nested overrides)."""
        data = self.cleaned_data
        payload = {}
        for name in self.base_fields:
            if name not in data:
                continue
            value = data[name]
            target, factor = FIELD_MAP.get(name, (name, None))
            if factor and value is not None:
                value = int(value * factor)
            payload[target] = value
        overrides = {}
        for category in RETRY_CATEGORIES:
            entry = {}
            for name, _label, source, factor in OVERRIDE_FIELDS:
                value = data.get(f"ov_{category.value}_{name}")
                if value is None:
                    continue
                if factor == HOUR:
                    value = int(value * HOUR)
                elif name == "backoff_multiplier":
                    value = float(value)
                entry[source] = value
            if entry:
                overrides[category.value] = entry
        payload["category_overrides"] = overrides
        payload["backoff_multiplier"] = str(payload.get("backoff_multiplier", ""))
        return payload

    def clean(self):
        super().clean()
        if self.errors:
            return self.cleaned_data
        serializer = RetryPolicySerializer(
            instance=self.instance, data=self.api_data(), context={"organization": self.organization},
            partial=self.instance is not None,
        )
        if not serializer.is_valid():
            reverse = {target: name for name, (target, _f) in FIELD_MAP.items()}
            for field, errors in serializer.errors.items():
                name = reverse.get(field, field)
                messages = errors if isinstance(errors, list) else [f"{k}: {' '.join(map(str, v))}" for k, v in errors.items()]
                self.add_error(name if name in self.fields else None, [str(m).replace("_seconds", " (hours)") for m in messages])
        else:
            self.serializer = serializer
        return self.cleaned_data

    def unsaved_policy(self) -> RetryPolicy:
        """A policy object with the form's values, for the preview (never saved)."""
        data = self.serializer.validated_data if self.serializer else {}
        policy = RetryPolicy(organization=self.organization)
        for name, value in data.items():
            setattr(policy, name, value)
        return policy


class PreviewForm(forms.Form):
    category = forms.ChoiceField(label=_("Decline"), choices=Category.choices, initial=Category.INSUFFICIENT_FUNDS)
    timezone = forms.CharField(label=_("Customer's time zone"), initial="Asia/Kolkata", max_length=64)

    def clean_timezone(self):
        tz = self.cleaned_data["timezone"].strip()
        if tz not in known_timezones():
            raise forms.ValidationError(_("Unknown time zone; use a name like Asia/Kolkata or Europe/Berlin."))
        return tz
