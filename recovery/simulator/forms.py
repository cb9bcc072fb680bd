"""The console's "Compare policies" form."""

from __future__ import annotations

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from recovery.models import RetryPolicy
from recovery.simulator.population import MIXES, PopulationModel
from recovery.simulator.service import MAX_SIZE

MIX_LABELS = {"subscriptions": _("Subscriptions (mostly insufficient funds)"), "hard_declines": _("Hard declines (expired, lost, stolen cards)")}


# The population's families (recovery/simulator/population.py FAMILY), as the results table names them.
FAMILY_LABELS = {
    "insufficient_funds": _("Insufficient funds"), "card_declined": _("Generic decline"),
    "processing_error": _("Processing error"), "network_error": _("Issuer unavailable"),
    "expired_card": _("Expired card"), "invalid_card": _("Invalid card"),
    "authentication_required": _("Authentication required"), "lost_or_stolen": _("Lost or stolen card"),
    "fraud": _("Suspected fraud"), "revoked": _("Cancelled by the cardholder"), "do_not_retry": _("Do not retry"),
}


def default_parameters() -> str:
    params = PopulationModel().as_dict()
    params.pop("mix")
    return json.dumps(params, indent=2)


class CompareForm(forms.Form):
    policies = forms.ModelMultipleChoiceField(
        label=_("Your policies"), queryset=RetryPolicy.objects.none(), required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    tinko_default = forms.BooleanField(label=_("Tinko's default policy"), required=False, initial=True)
    source = forms.ChoiceField(label=_("Failures"), choices=[
        ("synthetic", _("A simulated population")), ("recent", _("Your failed payments of the last 90 days")),
    ], initial="synthetic")
    mix = forms.ChoiceField(label=_("Decline mix"), choices=[(m, MIX_LABELS.get(m, m)) for m in MIXES], initial="subscriptions")
    size = forms.IntegerField(label=_("Failures to simulate"), min_value=1, max_value=MAX_SIZE, initial=2000)
    seed = forms.IntegerField(label=_("Random seed"), min_value=0, max_value=2**31 - 1, initial=1,
                              help_text=_("The same seed replays the same customers."))
    parameters = forms.CharField(
        label=_("Issuer and customer model (JSON)"), widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        initial=default_parameters, required=False,
        help_text=_("Change any figure; docs/simulator.md explains each and where it comes from."),
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.fields["policies"].queryset = RetryPolicy.objects.filter(organization=organization).order_by("-is_default", "name")

    def clean_parameters(self):
        text = (self.cleaned_data.get("parameters") or "").strip()
        if not text:
            return {}
        try:
            params = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": exc.msg}) from exc
        if not isinstance(params, dict):
            raise forms.ValidationError(_("Give an object of parameter names and values."))
        params.pop("mix", None)
        try:
            PopulationModel.from_dict(params)
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(str(exc)) from exc
        return params

    def clean(self):
        data = super().clean()
        if not data.get("policies") and not data.get("tinko_default"):
            raise forms.ValidationError(_("Choose at least one policy to compare with the fixed schedules."))
        return data

    @staticmethod
    def initial_from(run_request: dict) -> dict:
        """The form's values for a stored run request (:meth:`run_request` read back)."""
        model = dict(run_request["model"])
        mix = model.pop("mix", "subscriptions")
        return {
            "policies": run_request["policy_ids"], "tinko_default": run_request["tinko_default"],
            "source": run_request["source"], "size": run_request["size"], "seed": run_request["seed"], "mix": mix,
            "parameters": json.dumps({**json.loads(default_parameters()), **model}, indent=2),
        }

    def run_request(self) -> dict:
        data = self.cleaned_data
        return {
            "policy_ids": [p.pk for p in data["policies"]], "tinko_default": data["tinko_default"],
            "source": data["source"], "size": data["size"], "seed": data["seed"],
            "model": {**data["parameters"], "mix": data["mix"]},
        }
