"""Console forms. They validate input; the services in tinko/services.py make the changes."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from tinko.currencies import CURRENCY_CHOICES
from tinko.models import TIMEZONE_CHOICES, Organization, Role


class ColorInput(forms.TextInput):
    input_type = "color"


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(label=_("Organization name"), max_length=120)
    timezone = forms.ChoiceField(label=_("Time zone"), choices=TIMEZONE_CHOICES, initial="UTC")
    default_currency = forms.ChoiceField(label=_("Default currency"), choices=CURRENCY_CHOICES, initial="USD")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("An organization needs a name."))
        return name


class OrganizationSettingsForm(forms.ModelForm):
    """Settings and branding.

    Bound to a throw-away copy of the organization so that model validation
    (e.g. the https-only logo rule) runs here and shows as field errors, while
    the real change goes through services.update_organization.
    """

    timezone = forms.ChoiceField(label=_("Time zone"), choices=TIMEZONE_CHOICES)
    default_currency = forms.ChoiceField(label=_("Default currency"), choices=CURRENCY_CHOICES)
    logo_url = forms.URLField(
        label=_("Logo URL"), required=False, max_length=500, assume_scheme="https",
        help_text=_("An https:// address of your logo image."),
    )

    class Meta:
        model = Organization
        fields = ["name", "timezone", "default_currency", "display_name", "accent_color", "logo_url", "support_email"]
        labels = {
            "name": _("Organization name"),
            "default_currency": _("Default currency"),
            "display_name": _("Display name"),
            "accent_color": _("Accent colour"),
            "support_email": _("Support e-mail"),
        }
        help_texts = {
            "display_name": _("The name customers see on messages and pay pages; defaults to the organization name."),
            "accent_color": _("Buttons and links on customer-facing pages."),
            "support_email": _("Where customers can reach you; shown on pay pages."),
        }
        widgets = {"accent_color": ColorInput()}

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.default_currency
        if current and current not in dict(CURRENCY_CHOICES):
            # A currency withdrawn since it was chosen stays selectable for this org.
            self.fields["default_currency"].choices = [(current, current), *CURRENCY_CHOICES]
        if read_only:
            for field in self.fields.values():
                field.disabled = True


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=254)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Key name"),
        max_length=80,
        help_text=_("Where the key is used, e.g. “Production server”."),
    )


class AuditFilterForm(forms.Form):
    """Filter choices are the values that actually occur in this organization's log."""

    action = forms.ChoiceField(label=_("Action"), required=False)
    actor = forms.ChoiceField(label=_("Actor"), required=False)

    def __init__(self, *args, actions: list[str], actors: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", _("All actions"))] + [(a, a) for a in actions]
        self.fields["actor"].choices = [("", _("Anyone"))] + [(a, a) for a in actors]


class ApiLogFilterForm(forms.Form):
    """Developers → Logs, API requests. ``q`` goes by what it looks like: a path ("/…", its beginning),
    else a request id or an Idempotency-Key (exact)."""

    q = forms.CharField(
        label=_("Search"), required=False, max_length=255,
        help_text=_("A request id, an Idempotency-Key, or the beginning of a path (/api/v1/…)."),
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Request id, Idempotency-Key or /path")}),
    )
    status = forms.ChoiceField(
        label=_("Status"), required=False,
        choices=[("", _("Any")), ("2xx", _("Succeeded (2xx)")), ("4xx", _("Refused (4xx)")), ("5xx", _("Failed (5xx)"))],
    )
    method = forms.ChoiceField(
        label=_("Method"), required=False,
        choices=[("", _("Any")), ("GET", "GET"), ("POST", "POST"), ("PUT", "PUT"), ("PATCH", "PATCH"), ("DELETE", "DELETE")],
    )
    key = forms.TypedChoiceField(label=_("API key"), required=False, coerce=int, empty_value=None)

    def __init__(self, *args, keys, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [("", _("Any"))] + [(k.pk, k.name) for k in keys]
