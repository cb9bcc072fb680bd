from django.urls import path, re_path

from recovery.api import views

# References are the merchant's own and may contain "/" (e.g. "INV/2026/001").
REFERENCE = r"(?P<reference>.+)"

urlpatterns = [
    path("events/payment_failed", views.PaymentFailedView.as_view(), name="payment-failed"),
    path("events/payment_failed/batch", views.PaymentFailedBatchView.as_view(), name="payment-failed-batch"),
    path("payments", views.PaymentListView.as_view(), name="payments"),
    re_path(rf"^payments/{REFERENCE}/recovery_link$", views.PaymentRecoveryLinkView.as_view(), name="payment-link"),
    re_path(rf"^payments/{REFERENCE}/retry_now$", views.PaymentRetryNowView.as_view(), name="payment-retry-now"),
    re_path(rf"^payments/{REFERENCE}/cancel$", views.PaymentCancelView.as_view(), name="payment-cancel"),
    re_path(rf"^payments/{REFERENCE}/paid$", views.PaymentPaidView.as_view(), name="payment-paid"),
    re_path(rf"^payments/{REFERENCE}$", views.PaymentDetailView.as_view(), name="payment"),
    path("retry_policies", views.RetryPolicyListView.as_view(), name="retry-policies"),
    path("retry_policies/<int:pk>", views.RetryPolicyDetailView.as_view(), name="retry-policy"),
]
