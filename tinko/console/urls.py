from django.urls import path

from tinko.console import views

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
]
