"""Django admin for the PSP adapter layer: connected accounts, the webhook inbox, what PSPs said.

SandboxCharge is the sandbox PSP's ledger: staff may read it to see what
"moved money" in local mode, never write it (a changed row would break the
idempotency the ledger stands for).
"""

from __future__ import annotations

from django.contrib import admin, messages

from payments.models import (
    ProviderAccount,
    ProviderSuccess,
    RazorpayOrderClaim,
    ReconciliationCheck,
    SandboxCharge,
    WebhookMessage,
)
from payments.providers import DECLINE_FIELDS
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
        "off_session", *DECLINE_FIELDS, "created_at",
    )
    readonly_fields = fields


@admin.register(ProviderAccount)
class ProviderAccountAdmin(ReadOnlyAdmin):
    """Connected PSP accounts, without their credentials: secrets are never shown, not even to staff."""

    list_display = ("name", "organization", "provider", "mode", "key_hint", "is_active", "last_check_ok", "created_at")
    list_filter = ("provider", "mode", "is_active")
    search_fields = ("name", "public_id", "organization__slug", "organization__name")
    list_select_related = ("organization",)
    # "credentials" is deliberately absent.
    fields = ("organization", "provider", "name", "mode", "public_id", "key_id", "key_hint", "is_active",
              "last_checked_at", "last_check_ok", "last_check_detail", "recharges_paused_at", "recharges_paused_reason",
              "created_at", "updated_at")
    readonly_fields = fields


@admin.register(WebhookMessage)
class WebhookMessageAdmin(ReadOnlyAdmin):
    """The webhook inbox: every request as it arrived. Staff may replay verified messages."""

    list_display = ("received_at", "provider", "account", "event_type", "received_event_id", "status", "tries",
                    "response_status")
    list_filter = ("provider", "status", "event_type", "received_at")
    search_fields = ("received_event_id", "event_type", "account_public_id", "organization__slug")
    list_select_related = ("account",)
    date_hierarchy = "received_at"
    show_full_result_count = False
    actions = ["replay"]
    fields = ("provider", "account", "organization", "account_public_id", "received_at", "remote_addr", "headers", "body",
              "signature_valid", "received_event_id", "event_id", "event_type", "status", "response_status", "result",
              "error", "processed_at", "ordering_key", "tries", "next_try_at", "deliveries", "replays")
    readonly_fields = fields

    def has_replay_permission(self, request):
        return request.user.has_perm("payments.change_webhookmessage")

    @admin.action(description="Replay the selected messages (process them again)", permissions=["replay"])
    def replay(self, request, queryset):
        from payments import inbox

        for message in queryset.select_related("account__organization"):
            try:
                status, text = inbox.replay(message)
            except ValueError as exc:
                self.message_user(request, f"Message {message.pk}: {exc}", level=messages.ERROR)
            else:
                level = messages.SUCCESS if status < 400 else messages.ERROR
                self.message_user(request, f"Message {message.pk}: {status} {text}", level=level)


@admin.register(ProviderSuccess)
class ProviderSuccessAdmin(ReadOnlyAdmin):
    """Money a PSP confirmed, kept so a success that arrives before its failure still ends the recovery."""

    list_display = ("charge_id", "organization", "account", "amount", "currency", "payment", "occurred_at")
    search_fields = ("charge_id", "references", "organization__slug")
    list_select_related = ("organization", "account", "payment")
    show_full_result_count = False
    fields = ("organization", "account", "references", "charge_id", "amount", "currency", "occurred_at", "payment", "created_at")
    readonly_fields = fields


@admin.register(RazorpayOrderClaim)
class RazorpayOrderClaimAdmin(ReadOnlyAdmin):
    """Each Razorpay re-charge attempt's order and debit, claimed before Razorpay was asked (read only: it guards money)."""

    list_display = ("receipt", "organization", "payment", "order_id", "debit_id", "debit_status", "updated_at")
    list_filter = ("debit_status",)
    search_fields = ("receipt", "order_id", "debit_id", "payment__reference", "organization__slug")
    list_select_related = ("organization", "payment")
    show_full_result_count = False
    fields = ("organization", "account", "payment", "receipt", "order_id", "debit_id", "debit_status",
              "debit_created_at", "created_at", "updated_at")
    readonly_fields = fields


@admin.register(ReconciliationCheck)
class ReconciliationCheckAdmin(ReadOnlyAdmin):
    """What reconciliation found when it asked the PSP about a payment under recovery."""

    list_display = ("checked_at", "organization", "payment", "paid", "recovered", "detail")
    list_filter = ("paid", "recovered", "checked_at")
    search_fields = ("payment__reference", "organization__slug")
    list_select_related = ("organization", "payment")
    show_full_result_count = False
    fields = ("organization", "payment", "checked_at", "paid", "recovered", "detail")
    readonly_fields = fields
