from django.urls import include, path

from tinko.api import views

app_name = "api"
urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("", include("recovery.api.urls")),
    path("", include("analytics.urls")),
]
