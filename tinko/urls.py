from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tinko import ops
from tinko.accounts import views as account_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:home", permanent=False)),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("accounts/", include("allauth.urls")),
    path("language/", account_views.set_language, name="set_language"),
    path("invitations/<str:token>/", account_views.invitation_accept, name="invitation_accept"),
    path("console/", include("tinko.console.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tinko.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (the CSP allows no inline script).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("pay/", include("paypages.urls")),
    path("webhooks/", include("payments.urls")),
    path("", include("notifications.urls")),
]

# A database outage answers 503 with Retry-After instead of 500 (tinko/errors.py).
handler500 = "tinko.errors.server_error"
# An unknown API path answers its JSON 404 directly: the HTML 404 page needs the static files' manifest.
handler404 = "tinko.errors.not_found"
