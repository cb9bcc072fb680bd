from django.apps import AppConfig


class PaypagesConfig(AppConfig):
    """The customer's pay pages under /pay/<token>/: brand, amount, one button to the PSP's checkout."""

    name = "paypages"
    verbose_name = "Pay pages"
