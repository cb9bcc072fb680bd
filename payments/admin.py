"""Django admin for payments.

SandboxCharge is the sandbox PSP's ledger: staff may read it to see what
"moved money" in local mode, never write it (a changed row would break the
idempotency the ledger stands for).
"""

from __future__ import annotations

from django.contrib import admin

from payments.models import Customer, Payment, SandboxCharge
from tinko.admin import ReadOnlyAdmin


@admin.register(SandboxCharge)
class SandboxChargeAdmin(ReadOnlyAdmin):
    list_display = ("charge_id", "organization", "payment", "status", "amount", "currency", "card_last4", "decline_code", "created_at")
    list_filter = ("status", "decline_code", "created_at")
    search_fields = ("charge_id", "idempotency_key", "payment__reference", "organization__name", "organization__slug")
    list_select_related = ("organization", "payment")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "charge_id", "organization", "payment", "idempotency_key", "status", "amount", "currency", "card_last4",
        "off_session", "code", "decline_code", "advice_code", "network_advice_code", "network_decline_code",
        "message", "created_at",
    )
    readonly_fields = fields


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
