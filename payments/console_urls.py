"""The console's payment, retry-policy and onboarding pages, included into the console namespace."""

from django.urls import path

from onboarding import views as onboarding
from payments import console as payments
from recovery import console as policies

urlpatterns = [
    path("payments/", payments.payment_list, name="payments"),
    path("payments/export.csv", payments.payment_export, name="payments_export"),
    path("payments/<int:pk>/", payments.payment_detail, name="payment_detail"),
    path("payments/<int:pk>/retry/", payments.payment_retry, name="payment_retry"),
    path("payments/<int:pk>/link/", payments.payment_link, name="payment_link"),
    path("payments/<int:pk>/cancel/", payments.payment_cancel, name="payment_cancel"),
    path("policies/", policies.policy_list, name="policies"),
    path("policies/new/", policies.policy_create, name="policy_create"),
    path("policies/preview/", policies.policy_preview, name="policy_preview"),
    path("policies/<int:pk>/", policies.policy_edit, name="policy_edit"),
    path("policies/<int:pk>/default/", policies.policy_set_default, name="policy_set_default"),
    path("policies/<int:pk>/delete/", policies.policy_delete, name="policy_delete"),
    path("get-started/", onboarding.wizard, name="onboarding"),
]
