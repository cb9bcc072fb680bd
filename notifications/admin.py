"""Django admin for notifications: staff read messages and deliveries, and may lift a suppression."""

from __future__ import annotations

from django.contrib import admin

from notifications.models import (
    MessageTemplate,
    MessagingSettings,
    Notification,
    Suppression,
    WebhookDelivery,
    WebhookEndpoint,
)
from tinko.admin import ReadOnlyAdmin


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organization", "channel", "kind", "recipient", "status", "reason", "provider")
    list_filter = ("status", "channel", "kind", "reason", "is_test")
    search_fields = ("recipient", "provider_message_id", "public_id", "payment__reference")
    # The encrypted content (it carries live pay links) is not shown here.
    exclude = ("text_encrypted", "html_encrypted", "pay_url_encrypted")
    list_select_related = ("organization",)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "organization", "channel", "address", "reason", "detail")
    list_filter = ("reason", "channel")
    search_fields = ("address",)
    readonly_fields = ("organization", "channel", "address", "reason", "detail", "created_at")

    def has_add_permission(self, request):
        return False


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ReadOnlyAdmin):
    list_display = ("organization", "channel", "kind", "locale", "updated_at")
    list_filter = ("channel", "kind", "locale")


@admin.register(MessagingSettings)
class MessagingSettingsAdmin(admin.ModelAdmin):
    list_display = ("organization", "default_locale", "whatsapp_from")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("organization", "url", "is_active", "disabled_at", "created_at")
    list_filter = ("is_active",)
    exclude = ("secret_encrypted",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "endpoint", "status", "attempt_count", "last_status_code", "next_attempt_at")
    list_filter = ("status",)
