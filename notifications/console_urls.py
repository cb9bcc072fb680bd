"""Console pages of notifications (mounted inside the console namespace: console:outbox, console:templates…)."""

from django.urls import path

from notifications import console

urlpatterns = [
    path("outbox/", console.outbox, name="outbox"),
    path("outbox/<str:public_id>/", console.outbox_message, name="outbox_message"),
    path("templates/", console.templates, name="templates"),
    path("templates/<str:channel>/<str:kind>/<str:locale>/", console.template_edit, name="template_edit"),
    path("templates/<str:channel>/<str:kind>/<str:locale>/preview/", console.template_preview, name="template_preview"),
    path("messaging/", console.messaging_settings, name="notifications_settings"),
    path("webhooks/", console.webhooks_page, name="webhooks"),
    path("webhooks/<int:pk>/", console.webhook_detail, name="webhook_detail"),
    path("webhooks/<int:pk>/test/", console.webhook_test, name="webhook_test"),
    path("webhooks/<int:pk>/active/", console.webhook_active, name="webhook_active"),
    path("developers/logs/webhook-deliveries/", console.webhook_delivery_logs, name="webhook_delivery_logs"),
    path("webhooks/deliveries/<int:pk>/resend/", console.webhook_resend, name="webhook_resend"),
]
