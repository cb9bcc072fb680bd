"""The real URLs plus ``POST /bench/baseline``, the bare endpoint ingestion is compared with."""

from django.urls import include, path

from django.views.decorators.csrf import csrf_exempt

from tests.bench.views import BaselineView, stripe_verify_only

urlpatterns = [
    path("bench/baseline", BaselineView.as_view(), name="bench-baseline"),
    path("bench/stripe-verify/<str:public_id>/", csrf_exempt(stripe_verify_only), name="bench-stripe-verify"),
    path("", include("tinko.urls")),
]
