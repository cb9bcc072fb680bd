from django.urls import path

from payments import views

app_name = "webhooks"
urlpatterns = [
    path("stripe/<str:public_id>/", views.stripe_webhook, name="stripe"),
    path("razorpay/<str:public_id>/", views.razorpay_webhook, name="razorpay"),
]
