"""The console's retry-policy form: people's units (hours, days) in, the API's validation and shape out.

Validation is the REST API's own (RetryPolicySerializer), so a policy the
console accepts is exactly one the API accepts, and the two never drift.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from recovery import steps as policy_steps
from recovery.api.serializers import CHANNEL_CHOICES, RetryPolicySerializer
from recovery.labels import step_key_label
from recovery.models import Category, Channel, RetryPolicy
from tinko.models import known_timezones

HOUR = 3600
# Empty rows shown under each category's steps, for adding more.
SPARE_ROWS = 2
MIN_ROWS = 3
STEP_ACTIONS = [("", "—"), (policy_steps.RECHARGE, _("Re-charge")), (policy_steps.MESSAGE, _("Message"))]
STEP_CHANNELS = [("", _("Next channel in turn"))] + [(c, Channel(c).label) for c in CHANNEL_CHOICES]


def _hours(seconds) -> Decimal:
    return (Decimal(int(seconds)) / HOUR).quantize(Decimal("0.01")).normalize()


class PolicyForm(forms.Form):
    """The policy's shared settings plus, per decline category, rows of steps (action, wait in hours, channel).

    A row with no action is ignored, so clearing a row's action removes the step.
    """

    name = forms.CharField(label=_("Name"), max_length=80)
    recovery_window_days = forms.IntegerField(label=_("Recovery window (days)"), min_value=1, max_value=60)
    channels = forms.MultipleChoiceField(
        label=_("Message channels"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(c, Channel(c).label) for c in CHANNEL_CHOICES],
    )
    quiet_hours_start = forms.TimeField(label=_("Quiet hours from"), required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    quiet_hours_end = forms.TimeField(label=_("Quiet hours until"), required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    payday_alignment = forms.BooleanField(label=_("Retry insufficient funds on paydays"), required=False)
    payday_days = forms.CharField(label=_("Paydays (days of the month)"), required=False, help_text=_("e.g. 1, 15 (31 = the month's last day). Empty: only customers whose own payday Tinko has learnt from their past payments are aligned."))
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
        data = args[0] if args else kwargs.get("data")
        for key in policy_steps.STEP_KEYS:
            for index in range(self._rows(key, data)):
                prefix = f"st_{key}_{index}"
                # Labels name the category: each one is unique on the page (screen readers, tests).
                names = {"category": step_key_label(key), "n": index + 1}
                self.fields[f"{prefix}_action"] = forms.ChoiceField(
                    label=_("%(category)s, step %(n)s") % names, choices=STEP_ACTIONS, required=False)
                self.fields[f"{prefix}_after_hours"] = forms.DecimalField(
                    label=_("%(category)s, step %(n)s: wait (hours)") % names, required=False, min_value=0,
                    max_value=Decimal(policy_steps.MAX_WAIT // HOUR), decimal_places=2)
                self.fields[f"{prefix}_channel"] = forms.ChoiceField(
                    label=_("%(category)s, step %(n)s: channel") % names, choices=STEP_CHANNELS, required=False)
        self.serializer = None

    def _rows(self, key: str, data) -> int:
        if data is not None:
            head = f"st_{key}_"
            present = [int(name[len(head):-len("_action")]) for name in data
                       if name.startswith(head) and name.endswith("_action") and name[len(head):-len("_action")].isdigit()]
            count = max(present) + 1 if present else 0
        else:
            count = sum(1 for name in self.initial if name.startswith(f"st_{key}_") and name.endswith("_action"))
            count += SPARE_ROWS
        return min(count if data is not None else max(count, MIN_ROWS), policy_steps.MAX_STEPS)

    @staticmethod
    def initial_for(policy: RetryPolicy) -> dict:
        initial = {
            "name": policy.name, "recovery_window_days": policy.recovery_window_days,
            "channels": list(policy.channels or []),
            "quiet_hours_start": policy.quiet_hours_start, "quiet_hours_end": policy.quiet_hours_end,
            "payday_alignment": policy.payday_alignment,
            "payday_days": ", ".join(str(d) for d in policy.payday_days or []),
            "holdout_percent": policy.holdout_percent, "is_default": policy.is_default,
        }
        for key, steps in (policy.steps or {}).items():
            for index, step in enumerate(steps or []):
                prefix = f"st_{key}_{index}"
                initial[f"{prefix}_action"] = step.get("action", "")
                initial[f"{prefix}_after_hours"] = _hours(step.get("after_seconds", 0))
                initial[f"{prefix}_channel"] = step.get("channel", "")
        return initial

    def step_sections(self):
        """(key, label, whether re-charges are allowed, [(action, after, channel) bound fields]) per category."""
        sections = []
        for key in policy_steps.STEP_KEYS:
            rows = []
            index = 0
            while f"st_{key}_{index}_action" in self.fields:
                prefix = f"st_{key}_{index}"
                rows.append((self[f"{prefix}_action"], self[f"{prefix}_after_hours"], self[f"{prefix}_channel"]))
                index += 1
            sections.append((key, step_key_label(key), key in policy_steps.RECHARGE_KEYS, rows))
        return sections

    def clean_holdout_percent(self):
        return self.cleaned_data.get("holdout_percent") or 0

    def clean_payday_days(self):
        raw = self.cleaned_data.get("payday_days", "")
        try:
            return [int(part) for part in raw.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError(_("List days of the month as numbers, e.g. 1, 15.")) from None

    def steps_data(self) -> dict:
        """The rows in the API's shape: {category: [{"action", "after_seconds", "channel"}]}, empty rows left out."""
        data = self.cleaned_data
        steps = {}
        for key in policy_steps.STEP_KEYS:
            rows = []
            index = 0
            while f"st_{key}_{index}_action" in self.fields:
                prefix = f"st_{key}_{index}"
                action = data.get(f"{prefix}_action")
                if action:
                    after = data.get(f"{prefix}_after_hours") or Decimal(0)
                    step = {"action": action, "after_seconds": int(after * HOUR)}
                    if action == policy_steps.MESSAGE:
                        step["channel"] = data.get(f"{prefix}_channel") or ""
                    rows.append(step)
                index += 1
            steps[key] = rows
        return steps

    def api_data(self) -> dict:
        """The cleaned values in the API's shape."""
        data = self.cleaned_data
        payload = {name: data[name] for name in self.base_fields if name in data}
        payload["steps"] = self.steps_data()
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
            for field, errors in serializer.errors.items():
                if field == "steps" and isinstance(errors, dict):
                    for key, problems in errors.items():
                        label = step_key_label(key) if key in policy_steps.STEP_KEYS else key
                        for problem in problems:
                            self.add_error(None, f"{label}: {problem}")
                    continue
                messages = errors if isinstance(errors, list) else [f"{k}: {' '.join(map(str, v))}" for k, v in errors.items()]
                self.add_error(field if field in self.fields else None, [str(m) for m in messages])
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


def preview_choices():
    return [(key, step_key_label(key)) for key in policy_steps.STEP_KEYS] + [
        (Category.FRAUD_OR_STOLEN.value, _("Suspected fraud"))
    ]


class PreviewForm(forms.Form):
    category = forms.ChoiceField(label=_("Decline"), choices=preview_choices, initial=Category.INSUFFICIENT_FUNDS)
    timezone = forms.CharField(label=_("Customer's time zone"), initial="Asia/Kolkata", max_length=64)

    def clean_timezone(self):
        tz = self.cleaned_data["timezone"].strip()
        if tz not in known_timezones():
            raise forms.ValidationError(_("Unknown time zone; use a name like Asia/Kolkata or Europe/Berlin."))
        return tz
