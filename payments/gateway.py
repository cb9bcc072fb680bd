"""The payments app's side of the recovery core's PSP port (recovery/psp.py).

The core asks through :class:`PaymentsGateway`, connected when the app starts
(payments/apps.py); the answers come from the provider registry
(payments/providers.py) and the connected accounts (payments/accounts.py).
"""

from __future__ import annotations

from payments import providers
from payments.accounts import pause_recharges
from payments.models import Provider
from recovery import psp


class PaymentsGateway(psp.Gateway):
    def provider_names(self) -> set[str]:
        return providers.provider_names()

    def provider_choices(self) -> list[tuple[str, str]]:
        return providers.provider_choices()

    def provider_label(self, name: str) -> str:
        try:
            return Provider(name).label  # the built-ins' names, translated
        except ValueError:
            return providers.provider_label(name)

    def recharge_provider(self, payment, accounts=None):
        return providers.recharge_provider(payment, accounts)

    def connected_accounts(self, payments):
        return providers.connected_accounts(payments)

    def credentials_refused(self, provider, reason: str) -> None:
        account = getattr(provider, "account", None)
        if account is not None:
            pause_recharges(account=account, reason=reason)
