from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from payments.timeline import webhook_entries
        from recovery.timeline import register_source

        register_source(webhook_entries)
