from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from payments.gateway import PaymentsGateway
        from payments.timeline import webhook_entries
        from recovery import psp
        from recovery.timeline import register_source

        register_source(webhook_entries)
        # The recovery core reaches the PSPs only through this port (recovery/psp.py).
        psp.connect(PaymentsGateway())
