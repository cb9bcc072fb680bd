from django.urls import include, path

from analytics import console as analytics_console
from tinko.console import views

app_name = "console"
urlpatterns = [
    path("", analytics_console.home, name="home"),
    path("organizations/new/", views.organization_create, name="organization_create"),
    path("switch/", views.switch, name="switch_organization"),
    path("settings/", views.settings, name="settings"),
    path("team/", views.team, name="team"),
    path("team/invite/", views.team_invite, name="team_invite"),
    path("team/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("team/members/<int:pk>/role/", views.member_role, name="member_role"),
    path("team/members/<int:pk>/remove/", views.member_remove, name="member_remove"),
    path("developers/api-keys/", views.api_keys, name="api_keys"),
    path("developers/api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("developers/logs/", views.api_logs, name="api_logs"),
    path("developers/logs/<int:pk>/", views.api_log_detail, name="api_log_detail"),
    path("audit/", views.audit_log, name="audit_log"),
    path("", include("payments.console_urls")),
    path("", include("recovery.console_urls")),
    path("", include("onboarding.urls")),
    path("providers/", include("payments.provider_console")),
    path("", include("notifications.console_urls")),
    path("analytics/export.csv", analytics_console.export, name="analytics_export"),
]
