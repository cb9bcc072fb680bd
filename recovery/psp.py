"""The recovery core's port to the payment service providers (PSPs).

The core decides when to re-charge and what a PSP's answer means; the payments
app (the adapter layer: the provider registry, Stripe, Razorpay, the sandbox,
connected accounts) knows how to ask. The core never imports payments, not even
inside a function: payments connects a :class:`Gateway` when it starts
(``PaymentsConfig.ready``), and the core calls the functions below, which ask it.

A provider the gateway hands back (:func:`recharge_provider`) is used as an
object with ``charge_off_session(payment=, amount=, currency=, idempotency_key=)``
answering a :class:`ChargeResult`, and, when it speaks to a connected account,
``account``. :class:`ChargeResult` lives here, with the core that reads it; the
providers build it (payments/providers.py re-exports it for them).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured


# Why a payment failed, in the PSPs' words: a ChargeResult's, a SandboxCharge's, a FailureEvent's and a
# failure report's fields of these names (recovery/reports.py) carry the same thing.
DECLINE_FIELDS = ("code", "decline_code", "advice_code", "network_advice_code", "network_decline_code", "message")


@dataclass(frozen=True)
class ChargeResult:
    """What a PSP answered to a charge, in the PSP's own (Stripe-style) codes.

    ``status`` is one of:

    - ``"succeeded"``: money moved; ``charge_id``, ``amount`` and ``currency`` say which charge.
    - ``"declined"``: the PSP answered and nothing was charged; the codes say why.
    - ``"error"``: the PSP could not be reached or answered unexpectedly. The outcome
      is unknown, and it is safe to retry with the SAME idempotency key (never a new one,
      which could charge twice). ``code="idempotency_error"`` is the exception: the key
      was first used for a different charge, and retrying with it will never succeed.
      ``code="authentication_error"`` means the PSP refused the account's key: nothing
      was charged, and nothing will be until the merchant fixes the key.
    - ``"pending"``: the PSP took the charge and has not settled it (a bank debit on a
      mandate can take days). Ask again later with the SAME key; never charge anew
      meanwhile.

    - ``"settled"``: nothing was charged because the debt is closed at the PSP (a Stripe
      invoice already paid, void or uncollectible); ``code`` says which (``invoice_paid``, …).
      ``code="earlier_attempt_paid"``: an earlier re-charge of Tinko's, whose answers were
      all lost, did charge; ``attempt_key`` names that attempt, ``charge_id``/``amount`` its charge.

    ``requires_action`` means the customer must authenticate (3-D Secure): bring them
    back on-session, do not retry blindly. ``card`` says which card was charged and why
    (e.g. "Visa •••• 4242 (the customer's default payment method)"), for the timeline.
    """

    status: str
    charge_id: str = ""
    amount: int = 0
    currency: str = ""
    code: str = ""
    decline_code: str = ""
    advice_code: str = ""
    network_advice_code: str = ""
    network_decline_code: str = ""
    message: str = ""
    requires_action: bool = False
    raw: dict = field(default_factory=dict)
    card: str = ""
    # With code="earlier_attempt_paid": the idempotency key of the earlier attempt whose charge paid the debt.
    attempt_key: str = ""

    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    ERROR = "error"
    PENDING = "pending"
    # The code of an error whose PSP refused the account's credentials (HTTP 401).
    AUTHENTICATION_ERROR = "authentication_error"
    SETTLED = "settled"
    # A settled code: an earlier attempt's re-charge (its answers lost) paid the debt; nothing new was charged.
    EARLIER_ATTEMPT_PAID = "earlier_attempt_paid"

    @property
    def succeeded(self) -> bool:
        return self.status == self.SUCCEEDED


class Gateway(abc.ABC):
    """What the core needs from the PSP layer. Nothing here may move money: only a provider's charge does."""

    @abc.abstractmethod
    def provider_names(self) -> set[str]:
        """The provider codes a failure report may carry (the registered providers and ``other``)."""

    @abc.abstractmethod
    def provider_choices(self) -> list[tuple[str, str]]:
        """(code, label) of every provider a failure report may name, for forms, the API and its schema."""

    @abc.abstractmethod
    def provider_label(self, name: str) -> str:
        """The provider's name for people."""

    @abc.abstractmethod
    def recharge_provider(self, payment, accounts=None) -> tuple[object | None, str]:
        """The provider that can re-charge ``payment`` off-session and "", or None and the plain-language reason.

        ``accounts``: what :meth:`connected_accounts` loaded for a batch. Reads only; never calls a PSP.
        """

    @abc.abstractmethod
    def connected_accounts(self, payments) -> list | None:
        """The connected accounts ``payments`` may be re-charged through, in one query (None: nothing to look up)."""

    @abc.abstractmethod
    def credentials_refused(self, provider, reason: str) -> None:
        """The PSP refused ``provider``'s credentials during a re-charge: re-charges through it must wait."""


_gateway: Gateway | None = None


def connect(gateway: Gateway) -> None:
    """Plug in the PSP layer (done once, by the payments app when it starts)."""
    global _gateway
    _gateway = gateway


def gateway() -> Gateway:
    if _gateway is None:
        raise ImproperlyConfigured("No PSP gateway is connected: the payments app connects one when it starts.")
    return _gateway


def provider_names() -> set[str]:
    return gateway().provider_names()


def provider_choices() -> list[tuple[str, str]]:
    return gateway().provider_choices()


def provider_label(name: str) -> str:
    return gateway().provider_label(name)


def recharge_provider(payment, accounts=None) -> tuple[object | None, str]:
    return gateway().recharge_provider(payment, accounts)


def connected_accounts(payments) -> list | None:
    return gateway().connected_accounts(payments)


def credentials_refused(provider, reason: str) -> None:
    gateway().credentials_refused(provider, reason)
