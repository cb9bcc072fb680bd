"""The real URLs plus ``POST /bench/baseline``, the bare endpoint ingestion is compared with."""

from django.urls import include, path

from tests.bench.views import BaselineView

urlpatterns = [
    path("bench/baseline", BaselineView.as_view(), name="bench-baseline"),
    path("", include("tinko.urls")),
]
