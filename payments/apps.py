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

        from django.db.models.signals import post_delete, post_save

        from payments import inbox
        from payments.models import ProviderAccount
        from tinko.scheduler import on_tick

        # A paused account or a new webhook secret counts from the next request, in every web process.
        post_save.connect(inbox.forget_account, sender=ProviderAccount, dispatch_uid="inbox_forget_account")
        post_delete.connect(inbox.forget_account, sender=ProviderAccount, dispatch_uid="inbox_forget_account_deleted")
        # Webhooks whose message to the workers was lost, whose worker died or whose retry is due.
        on_tick(inbox.sweep)

