"""The payment provider interface, its provider-neutral results, and the registry that picks a provider.

Stripe, Razorpay and the built-in sandbox each live in their own folder
(``payments/<provider>/``), implement :class:`PaymentProvider` and answer with
the dataclasses below. Nothing outside those folders imports a PSP SDK: the
recovery engine speaks only to this module.

A provider package registers its class with :func:`register_provider` when it
is imported; :data:`PROVIDER_MODULES` lists the packages this module imports
before it first answers, so callers never need to import a provider themselves.

Adding a PSP is one package and one line: write ``payments/<name>/`` with a
:class:`PaymentProvider` subclass (``name``, ``label``, ``connected``), call
``register_provider`` in its ``__init__``, and add the package to
:data:`PROVIDER_MODULES`. Ingestion's provider list (the API, its schema and
the console's filter), :func:`recharge_provider` and :func:`checkout_provider`
all read the registry (:func:`provider_choices`).
"""

from __future__ import annotations

import abc
import importlib
import logging
from dataclasses import dataclass, field

from django.db.models import Q

# What a charge answered is the core's type (recovery/psp.py); providers import it from here as before.
from recovery.psp import DECLINE_FIELDS, ChargeResult  # noqa: F401
from tinko import bulk, orgconfig

# Provider packages imported (once) before the registry is first read. A new PSP
# adds its package here and calls register_provider() in its __init__.
logger = logging.getLogger(__name__)

PROVIDER_MODULES: tuple[str, ...] = ("payments.sandbox", "payments.stripe", "payments.razorpay")




@dataclass(frozen=True)
class PaymentState:
    """What the PSP says about a payment now. Reading it must never move money."""

    paid: bool
    amount_paid: int = 0
    currency: str = ""
    charge_id: str = ""
    detail: str = ""
    # The idempotency key of Tinko's own re-charge that paid it, when that is what the PSP found.
    attempt_key: str = ""


@dataclass(frozen=True)
class CheckoutSession:
    """Where to send a customer to pay: ``url`` (absolute) and the PSP's id for the session.

    ``reference`` is the Stripe Checkout Session id, the Razorpay Payment Link
    id, or "" for the sandbox; the pay page stores it on the link's history so
    the return can be matched.
    """

    url: str
    reference: str = ""


@dataclass(frozen=True)
class CheckoutResult:
    """What the PSP says about a checkout after the customer came back (or a webhook said so).

    ``status`` is ``"paid"`` (money moved: ``charge_id``, ``amount``, ``currency``),
    ``"pending"`` (not decided yet: show "we're confirming" and wait for the
    webhook) or ``"failed"`` (not paid: the customer may try again). A provider
    decides this from the PSP itself (a re-fetch, or a verified signature),
    never from the redirect's query string alone.
    """

    status: str
    charge_id: str = ""
    amount: int = 0
    currency: str = ""
    detail: str = ""

    PAID = "paid"
    PENDING = "pending"
    FAILED = "failed"


class ProviderUnavailable(Exception):
    """No provider can do what was asked; ``str(exc)`` is a plain-language reason fit for a merchant."""


class PaymentProvider(abc.ABC):
    """One PSP. Instances are cheap and hold no per-request state.

    ``name``: the code failure reports use (at most 10 characters); ``label``: what
    people read; ``connected``: the provider speaks to a merchant's connected
    account (a ``ProviderAccount``, passed to ``__init__``), rather than needing none
    (the sandbox).
    """

    name: str
    label: str = ""
    connected: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Each call a provider makes to its PSP is timed and counted by provider (tinko/metrics.py).
        from tinko.metrics import time_psp_calls

        time_psp_calls(cls)

    @abc.abstractmethod
    def charge_off_session(self, *, payment, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        """Re-charge the customer's saved payment method without the customer present. MOVES MONEY.

        The same ``idempotency_key`` must never charge twice: a repeat (even a
        concurrent one) returns the first result. The same key with a different
        amount, currency or payment returns ``status="error"``,
        ``code="idempotency_error"`` and charges nothing. Declines are results,
        never exceptions; an unreachable PSP is ``status="error"``.
        """

    @abc.abstractmethod
    def fetch_payment_state(self, *, payment) -> PaymentState:
        """Ask the PSP whether ``payment`` is paid now. Read only: must not move money or write anything."""

    # The customer's contact from the PSP. Not abstract: a provider without customers keeps these.

    def fetch_customer_contact(self, customer_id: str) -> dict:
        """The PSP customer's e-mail, phone, name and locale, only values a failure report accepts. Read only."""
        return {}

    def contact_once(self, customer_id: str) -> tuple[dict, bool]:
        """The PSP customer's contact unless Tinko read it before (it is kept on Tinko's customer): (contact, fetched).

        A PSP that cannot be asked right now gives nothing: the failure matters
        more than the contact, which is read with the customer's next failure.
        """
        from django.db.models import Q

        from recovery.models import Customer

        if not customer_id or Customer.objects.filter(
            Q(key=f"id:{customer_id}") | Q(provider_customer_id=customer_id),
            organization_id=self.account.organization_id, provider_fetched_at__isnull=False,
        ).exists():
            return {}, False
        try:
            return self.fetch_customer_contact(customer_id), True
        except Exception as exc:  # any SDK's error: the outcome is only a missing contact
            logger.warning("%s customer %s could not be read: %s", self.name, customer_id, type(exc).__name__)
            return {}, False

    def cannot_recharge(self, payment) -> str:
        """Why ``payment`` cannot be re-charged off-session with this provider ("" when it can). Reads only."""
        return ""

    def webhook_ordering_key(self, event: "WebhookEvent") -> str:
        """The PSP object whose events must be applied one at a time, in arrival order ("": none). Reads only the event.

        The inbox's workers never apply two events with the same key at once,
        nor a later one before an earlier one has finished (or been given up).
        """
        return ""

    # Hosted checkout for the pay page. Not abstract: a provider without one keeps these.

    def create_checkout(self, *, payment, link, token: str, success_url: str, cancel_url: str, locale: str = "") -> CheckoutSession:
        """Start a hosted checkout for ``payment``'s outstanding amount, tied to ``link``. Moves no money by itself.

        ``success_url`` and ``cancel_url`` are absolute; the PSP sends the customer
        back to them. Raises ProviderUnavailable with a plain-language reason when
        the PSP cannot take the payment.
        """
        raise ProviderUnavailable(f"Customers cannot pay through {self.name} from Tinko's pay page yet.")

    def confirm_checkout(self, *, payment, link, params) -> CheckoutResult:
        """Decide, from the PSP and never from ``params`` alone, whether the checkout for ``link`` was paid.

        ``params`` are the query parameters of the customer's return (for
        Razorpay, the signed callback fields, which the provider verifies).
        Read only: must not move money.
        """
        raise ProviderUnavailable(f"Customers cannot pay through {self.name} from Tinko's pay page yet.")


_registry: dict[str, type[PaymentProvider]] = {}
_modules_loaded = False


def register_provider(provider_class: type[PaymentProvider]) -> type[PaymentProvider]:
    """Make ``provider_class`` available under its ``name``. Usable as a class decorator.

    Registering a second, different class under a taken name is a programming
    error and raises ValueError (re-registering the same class is harmless).
    """
    name = getattr(provider_class, "name", "")
    if not name:
        raise ValueError(f"{provider_class.__qualname__} has no provider name")
    existing = _registry.get(name)
    if existing is not None and existing is not provider_class:
        raise ValueError(f"A payment provider called {name!r} is already registered ({existing.__qualname__})")
    _registry[name] = provider_class
    return provider_class


def _load_provider_modules() -> None:
    global _modules_loaded
    if not _modules_loaded:
        # Imported lazily: provider packages import this module, and Django
        # models must be ready before they load.
        for module in PROVIDER_MODULES:
            importlib.import_module(module)
        _modules_loaded = True


def registered_providers() -> dict[str, type[PaymentProvider]]:
    """name → provider class, for every registered provider (a copy)."""
    _load_provider_modules()
    return dict(_registry)


OTHER = "other"


def provider_choices() -> list[tuple[str, str]]:
    """(name, label) of every registered provider, then ``other`` (a PSP Tinko cannot speak to)."""
    _load_provider_modules()
    return [(name, cls.label or name) for name, cls in sorted(_registry.items())] + [(OTHER, "Other")]


def provider_names() -> set[str]:
    """The provider codes a failure report may carry: the registered providers and ``other``."""
    _load_provider_modules()
    return {*_registry, OTHER}


def provider_label(name: str) -> str:
    _load_provider_modules()
    cls = _registry.get(name)
    return (cls.label or name) if cls is not None else ("Other" if name == OTHER else name)


def get_provider(name: str) -> PaymentProvider:
    """The provider registered as ``name``; raises ProviderUnavailable for a name nobody registered."""
    _load_provider_modules()
    try:
        provider_class = _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise ProviderUnavailable(
            f"Tinko has no payment provider called “{name}” (available: {known})."
        ) from None
    return provider_class()


_OUTSIDE_A_PSP = "Tinko cannot re-charge payments made outside a connected PSP"


def _cached_account(payment):
    """The payment's own account when it was loaded with the payment (e.g. by the webhook recording its failure) and is usable."""
    if not payment.provider_account_id:
        return None
    cached = payment._state.fields_cache.get("provider_account")
    if (cached is not None and cached.pk == payment.provider_account_id and cached.is_active
            and cached.organization_id == payment.organization_id and cached.provider == payment.provider):
        return cached
    return None


def provider_account_for(payment, accounts=None):
    """The active connected account that ``payment`` belongs to: its own, else the org's only one for its PSP.

    ``accounts``: the organizations' active accounts, already loaded by
    :func:`connected_accounts`, so that planning a batch makes no query per payment.
    """
    from payments.models import ProviderAccount

    cached = _cached_account(payment)
    if cached is not None:
        return cached
    if accounts is not None:
        mine = [a for a in accounts if a.organization_id == payment.organization_id and a.provider == payment.provider]
        if payment.provider_account_id:
            return next((a for a in mine if a.pk == payment.provider_account_id), None)
        return mine[0] if len(mine) == 1 else None
    accounts = ProviderAccount.objects.filter(
        organization_id=payment.organization_id, provider=payment.provider, is_active=True
    )
    if payment.provider_account_id:
        return accounts.filter(pk=payment.provider_account_id).first()
    found = list(accounts[:2])
    return found[0] if len(found) == 1 else None


def connected_accounts(payments) -> list | None:
    """The active accounts ``payments`` may belong to, in one query; None when none needs looking up."""
    from payments.models import ProviderAccount

    _load_provider_modules()
    wanted = {
        (p.organization_id, p.provider) for p in payments
        if _connected_provider(p.provider) and _cached_account(p) is None
    }
    if not wanted:
        return None
    organizations = {org for org, _ in wanted}
    providers = {name for _, name in wanted}
    if len(organizations) == 1:
        # One organization (an API request): its active accounts, from this process's copy while its
        # configuration is unchanged (tinko/orgconfig.py).
        (organization_id,) = organizations
        accounts = orgconfig.cached(organization_id, "payments.active_accounts", lambda: bulk.fetch(
            ProviderAccount, Q(organization_id=organization_id, is_active=True)
        ))
        return [a for a in accounts if a.provider in providers]
    # bulk.fetch, not a QuerySet: this runs for every ingested report, and building the QuerySet cost more than the query.
    return bulk.fetch(ProviderAccount, Q(
        organization_id__in=sorted(organizations), provider__in=sorted(providers), is_active=True,
    ))


def provider_for_account(account) -> PaymentProvider:
    """The provider instance that speaks to ``account`` (a connected Stripe or Razorpay account)."""
    _load_provider_modules()
    return _registry[account.provider](account)


def _connected_provider(name: str) -> bool:
    provider_class = _registry.get(name)
    return provider_class is not None and provider_class.connected


def _connected(payment, what: str, accounts=None) -> tuple[PaymentProvider | None, str]:
    name = provider_label(payment.provider)
    account = provider_account_for(payment, accounts)
    if account is None:
        return None, f"{what} through {name} need a connected {name} account (Console → Payment providers)"
    return provider_for_account(account), ""


def _provider_for(payment, what: str, accounts=None) -> tuple[PaymentProvider | None, str]:
    """The registered provider for ``payment``: the provider itself, or the one of its connected account."""
    _load_provider_modules()
    provider_class = _registry.get(payment.provider)
    if provider_class is None:
        return None, _OUTSIDE_A_PSP
    if not provider_class.connected:
        return provider_class(), ""
    return _connected(payment, what, accounts)


def recharge_provider(payment, accounts=None) -> tuple[PaymentProvider | None, str]:
    """Which provider can re-charge ``payment`` off-session: ``(provider, "")``, or ``(None, reason)``.

    The reason is plain language for the merchant and the attempt's log.
    Reads the payment and the organization's provider accounts (``accounts``
    when already loaded); never calls a PSP. Any registered provider qualifies.
    """
    provider, why = _provider_for(payment, "Automatic re-charges", accounts)
    account = getattr(provider, "account", None)
    if account is not None and account.recharges_paused_at is not None:
        return None, (
            f"Automatic re-charges through the {account.name} account are paused: "
            f"{account.recharges_paused_reason.rstrip('.')}. Test the connection or enter new keys "
            "(Console → Payment providers) to resume them"
        )
    if provider is not None:
        why = provider.cannot_recharge(payment)
        if why:
            return None, why
    return provider, why


def checkout_provider(payment) -> tuple[PaymentProvider | None, str]:
    """Which provider takes ``payment`` on the pay page: ``(provider, "")`` or ``(None, reason)``."""
    return _provider_for(payment, "Payments")


# --- Webhooks (connected PSP accounts) -------------------------------------------


class WebhookRejected(Exception):
    """A webhook request that is not a genuine, readable event of the account (answered 400)."""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified PSP event: its id (dedupe key), type, creation time and the decoded body."""

    id: str
    type: str
    payload: dict
    created: int = 0
