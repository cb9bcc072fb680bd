"""The console's Payments pages, included into the console namespace (tinko/console/urls.py)."""

from django.urls import path

from payments import console, customer_console, webhook_log_console

urlpatterns = [
    path("payments/", console.payment_list, name="payments"),
    path("payments/bulk/", console.payment_bulk, name="payment_bulk"),
    path("payments/export.csv", console.payment_export, name="payments_export"),
    path("payments/<int:pk>/", console.payment_detail, name="payment_detail"),
    path("payments/<int:pk>/retry/", console.payment_retry, name="payment_retry"),
    path("payments/<int:pk>/link/", console.payment_link, name="payment_link"),
    path("payments/<int:pk>/cancel/", console.payment_cancel, name="payment_cancel"),
    path("developers/logs/provider-webhooks/", webhook_log_console.psp_webhook_logs, name="psp_webhook_logs"),
    path("developers/logs/provider-webhooks/<int:pk>/", webhook_log_console.psp_webhook_log_detail,
         name="psp_webhook_log_detail"),
    path("customers/", customer_console.customer_list, name="customers"),
    path("customers/<int:pk>/", customer_console.customer_detail, name="customer_detail"),
]
