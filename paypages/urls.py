from django.urls import path

from payments.sandbox import views as sandbox_views
from paypages import views

app_name = "pay"
urlpatterns = [
    path("<str:token>/", views.page, name="page"),
    path("<str:token>/checkout/", views.checkout, name="checkout"),
    path("<str:token>/return/", views.checkout_return, name="return"),
    path("<str:token>/paid/", views.success, name="success"),
    path("<str:token>/status/", views.status, name="status"),
    # The sandbox PSP's hosted card form (payments/sandbox/checkout.py).
    path("<str:token>/sandbox/", sandbox_views.checkout_form, name="sandbox_checkout"),
]
