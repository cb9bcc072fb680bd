"""Django admin for the recovery app.

Staff edit the decline classifier's rules here: Tinko's defaults (no organization)
and organizations' overrides. A saved or deleted rule reaches every process's
classifier through recovery.classifier's signals.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from recovery.models import (
    ClassificationRule,
    Customer,
    FailureEvent,
    Payment,
    RecoveryAttempt,
    RecoveryLink,
    RetryPolicy,
    RuleField,
)
from tinko.admin import ReadOnlyAdmin

RULE_PROVIDERS = [
    ("", _("Any provider")),
    ("stripe", _("Stripe (also the sandbox)")),
    ("razorpay", _("Razorpay")),
    ("other", _("Other")),
]


class ClassificationRuleForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=RULE_PROVIDERS, required=False)

    class Meta:
        model = ClassificationRule
        fields = [
            "organization", "provider", "field", "value", "priority", "category", "action",
            "min_delay_seconds", "network_stop", "description", "is_active",
        ]
        widgets = {"value": forms.TextInput(attrs={"size": 80}), "description": forms.TextInput(attrs={"size": 80})}

    def clean_value(self):
        value = self.cleaned_data["value"].strip()
        if not value:
            raise forms.ValidationError(_("This field is required."))
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("field") == RuleField.MESSAGE and cleaned.get("value"):
            try:
                re.compile(cleaned["value"], re.IGNORECASE)
            except re.error as exc:
                self.add_error("value", _("Not a valid regular expression: %(error)s") % {"error": exc})
        return cleaned


class ScopeFilter(admin.SimpleListFilter):
    title = _("scope")
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("default", _("Tinko default")), ("organization", _("Organization override"))]

    def queryset(self, request, queryset):
        if self.value() == "default":
            return queryset.filter(organization__isnull=True)
        if self.value() == "organization":
            return queryset.filter(organization__isnull=False)
        return queryset


class ProviderFilter(admin.SimpleListFilter):
    title = _("provider")
    parameter_name = "provider"
    ANY = "any"  # the blank provider; a blank parameter would mean "no filter"

    def lookups(self, request, model_admin):
        return [(value or self.ANY, label) for value, label in RULE_PROVIDERS]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(provider="" if self.value() == self.ANY else self.value())


@admin.register(ClassificationRule)
class ClassificationRuleAdmin(admin.ModelAdmin):
    form = ClassificationRuleForm
    list_display = [
        "id", "scope", "provider_label", "field", "value", "priority", "category", "action",
        "min_delay_seconds", "network_stop", "is_active", "updated_at",
    ]
    list_display_links = ["id", "value"]
    list_filter = [ScopeFilter, ProviderFilter, "field", "category", "action", "network_stop", "is_active"]
    search_fields = ["value", "description"]
    list_select_related = ["organization"]
    raw_id_fields = ["organization"]
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 100

    @admin.display(description=_("scope"), ordering="organization__name")
    def scope(self, rule):
        return rule.organization.name if rule.organization_id else _("Tinko default")

    @admin.display(description=_("provider"), ordering="provider")
    def provider_label(self, rule):
        return rule.provider or _("any")

    def save_model(self, request, obj, form, change):
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)


# --- Recovery state: read-only; it changes only through the engine's services -------------------


@admin.register(RetryPolicy)
class RetryPolicyAdmin(ReadOnlyAdmin):
    """Merchants edit policies in the console or the API (validated, audited); staff read them here."""

    list_display = ("name", "organization", "is_default", "steps_count", "recovery_window_days", "updated_at")
    list_filter = ("is_default",)
    search_fields = ("name", "organization__slug", "organization__name")
    list_select_related = ("organization",)
    readonly_fields = ["steps_table"]

    @admin.display(description=_("steps"))
    def steps_count(self, policy):
        from recovery.templatetags.recovery_labels import steps_summary

        return steps_summary(policy.steps)

    @admin.display(description=_("steps per decline"))
    def steps_table(self, policy):
        """The steps as people read them: one line per category."""
        from django.utils.html import format_html_join

        from recovery.labels import step_key_label
        from recovery.planner import humanize
        from recovery.steps import RECHARGE, STEP_KEYS

        def line(step):
            wait = humanize(timedelta(seconds=step["after_seconds"])) if step["after_seconds"] else "0"
            if step["action"] == RECHARGE:
                return f"re-charge after {wait}"
            return f"message ({step.get('channel') or 'next channel'}) after {wait}"

        rows = [(step_key_label(key), "; ".join(line(s) for s in (policy.steps or {}).get(key) or []) or "—")
                for key in STEP_KEYS]
        return format_html_join("", "<p><strong>{}</strong>: {}</p>", rows)


@admin.register(FailureEvent)
class FailureEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "organization", "payment", "source", "category", "action", "occurred_at")
    list_filter = ("source", "category", "action", "network_stop")
    search_fields = ("external_id", "payment__reference", "decline_code", "code", "organization__slug")
    list_select_related = ("organization", "payment")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in FailureEvent._meta.fields]


@admin.register(RecoveryAttempt)
class RecoveryAttemptAdmin(ReadOnlyAdmin):
    list_display = ("id", "payment", "sequence", "kind", "channel", "status", "scheduled_for", "claims")
    list_filter = ("status", "kind", "channel")
    search_fields = ("payment__reference", "idempotency_key", "organization__slug")
    list_select_related = ("payment",)
    date_hierarchy = "scheduled_for"
    show_full_result_count = False
    readonly_fields = [f.name for f in RecoveryAttempt._meta.fields]


@admin.register(RecoveryLink)
class RecoveryLinkAdmin(ReadOnlyAdmin):
    """Links without their token hash or (encrypted) token: either is all an attacker would need."""

    list_display = ("id", "payment", "status", "expires_at", "open_count", "created_at")
    list_filter = ("status",)
    search_fields = ("payment__reference", "organization__slug")
    list_select_related = ("payment",)
    show_full_result_count = False
    readonly_fields = [f.name for f in RecoveryLink._meta.fields if f.name not in ("token_hash", "token_encrypted")]
    fields = readonly_fields


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "organization", "external_id", "email", "phone", "locale", "timezone", "created_at")
    search_fields = ("external_id", "email", "phone", "name", "organization__slug")
    list_select_related = ("organization",)
    list_filter = ("locale",)
    show_full_result_count = False
    fields = ("organization", "key", "external_id", "email", "phone", "name", "locale", "timezone",
              "opted_out_channels", "created_at", "updated_at")
    readonly_fields = ("organization", "key", "created_at", "updated_at")

    def has_add_permission(self, request):
        # Customers come from failure reports, scoped to their organization.
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    """Payments change only through the recovery engine (locks, audit events); staff read them here."""

    list_display = ("reference", "organization", "status", "category", "amount", "currency", "provider",
                    "failure_count", "created_at")
    list_filter = ("status", "category", "provider", "created_at")
    search_fields = ("reference", "provider_payment_id", "customer__email", "organization__slug")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in Payment._meta.fields]
