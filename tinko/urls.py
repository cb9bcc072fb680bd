from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tinko import ops
from tinko.accounts import views as account_views



class FaviconView(RedirectView):
    """``/favicon.ico``, which browsers and tools ask for on their own: the icon our pages link (no 404 in every log)."""

    def get_redirect_url(self, *args, **kwargs):
        return static("tinko/favicon.svg")  # its hashed name in production, so not a permanent redirect


urlpatterns = [
    path("favicon.ico", require_safe(FaviconView.as_view()), name="favicon"),
    path("", RedirectView.as_view(pattern_name="console:home", permanent=False)),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("accounts/", include("allauth.urls")),
    path("language/", account_views.set_language, name="set_language"),
    path("invitations/<str:token>/", account_views.invitation_accept, name="invitation_accept"),
    path("console/", include("tinko.console.urls")),
    # Customers and payments moved from the payments app to recovery: staff's bookmarks still land.
    re_path(r"^admin/payments/(?P<model>customer|payment)/(?P<rest>.*)$",
            RedirectView.as_view(url="/admin/recovery/%(model)s/%(rest)s", permanent=True, query_string=True)),
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
# An unknown API or webhook path answers JSON without rendering a page.
handler404 = "tinko.errors.page_not_found"
