"""The "Get started" wizard, included into the console namespace (tinko/console/urls.py)."""

from django.urls import path

from onboarding import views

urlpatterns = [
    path("get-started/", views.wizard, name="onboarding"),
]
