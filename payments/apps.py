from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from payments.timeline import webhook_entries
        from recovery.timeline import register_source

        register_source(webhook_entries)
        # A re-charge whose key the PSP refused pauses that account's re-charges (recovery.signals).
        from recovery.signals import provider_refused_key

        provider_refused_key.connect(_pause_refused_account, dispatch_uid="payments_pause_refused_account")


def _pause_refused_account(sender, *, provider, reason, **kwargs):
    account = getattr(provider, "account", None)
    if account is not None:
        from payments.accounts import pause_recharges

        pause_recharges(account=account, reason=reason)
