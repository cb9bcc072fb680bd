"""Public endpoints: provider callbacks (Twilio, anymail ESPs), unsubscribe links and the open pixel."""

from django.urls import include, path

from notifications import esp_webhooks, views

app_name = "notifications"
urlpatterns = [
    path("webhooks/messages/twilio/status/", views.twilio_status, name="twilio_status"),
    path("webhooks/messages/twilio/inbound/", views.twilio_inbound, name="twilio_inbound"),
    # anymail's endpoints, closed while they cannot authenticate their sender (notifications/esp_webhooks.py).
    path("webhooks/messages/anymail/", include((esp_webhooks.urlpatterns(), "anymail"))),
    path("m/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("m/o/<str:public_id>.gif", views.open_pixel, name="open"),
]
