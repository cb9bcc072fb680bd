"""The sandbox PSP: a built-in payment provider for local mode and tests.

It moves no real money and makes no network calls. Its ledger is the
``SandboxCharge`` table, so local mode and tests can count exactly how often
money "moved". Like a real PSP it honours idempotency keys: the same key
returns the first result and never charges twice, even when two workers send
it at once; the same key with a different amount, currency or payment is an
``idempotency_error`` and charges nothing.

The outcome of a charge is decided by the payment's card: the test-card table
is in payments/sandbox/cards.py (and payments/sandbox/README.md).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum

from payments.models import SandboxCharge, SandboxChargeStatus
from payments.providers import (
    DECLINE_FIELDS,
    ChargeResult,
    CheckoutResult,
    CheckoutSession,
    PaymentProvider,
    PaymentState,
    register_provider,
)
from payments.sandbox import checkout
from payments.sandbox.cards import card_for, set_outcome


IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first used with: "
    "this key was first used for a different payment, amount or currency."
)


def _result_from_charge(charge: SandboxCharge) -> ChargeResult:
    """The answer for a stored charge. A replayed key gets exactly this again, built from the same row."""
    succeeded = charge.status == SandboxChargeStatus.SUCCEEDED
    raw = {
        "id": charge.charge_id,
        "object": "charge",
        "amount": charge.amount,
        "currency": charge.currency.lower(),
        "created": int(charge.created_at.timestamp()),
        "livemode": False,
        "off_session": charge.off_session,
        "paid": succeeded,
        "status": "succeeded" if succeeded else "failed",
        "failure_code": charge.code or None,
        "failure_message": charge.message or None,
        "outcome": {
            "type": "authorized" if succeeded else "issuer_declined",
            "reason": charge.decline_code or None,
            "advice_code": charge.advice_code or None,
            "network_advice_code": charge.network_advice_code or None,
            "network_decline_code": charge.network_decline_code or None,
        },
        "payment_method_details": {"type": "card", "card": {"last4": charge.card_last4}},
        "metadata": {"tinko_payment_id": str(charge.payment_id or "")},
    }
    return ChargeResult(
        status=ChargeResult.SUCCEEDED if succeeded else ChargeResult.DECLINED,
        charge_id=charge.charge_id,
        amount=charge.amount,
        currency=charge.currency,
        **{name: getattr(charge, name) for name in DECLINE_FIELDS},
        requires_action=charge.decline_code == "authentication_required",
        raw=raw,
    )


def _replay(charge: SandboxCharge, *, payment, amount: int, currency: str) -> ChargeResult:
    if charge.payment_id != payment.pk or charge.amount != amount or charge.currency != currency:
        # Answer like Stripe: refuse, and say nothing about the other charge (it
        # may belong to another merchant).
        return ChargeResult(
            status=ChargeResult.ERROR,
            code="idempotency_error",
            message=IDEMPOTENCY_MISMATCH,
            raw={"error": {"type": "idempotency_error", "message": IDEMPOTENCY_MISMATCH}},
        )
    return _result_from_charge(charge)


def _new_charge_id() -> str:
    return f"sbx_ch_{secrets.token_hex(12)}"


@register_provider
class SandboxProvider(PaymentProvider):
    """The built-in PSP: outcomes from the test-card table (module docstring), ledger in SandboxCharge."""

    name = "sandbox"
    label = "Sandbox"
    connected = False  # built in: no account to connect

    def charge_off_session(self, *, payment, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        """Re-charge ``payment``'s card off-session. Records one SandboxCharge per idempotency key.

        - A new key records a ``succeeded`` or ``declined`` charge for the
          payment's organization, as the test-card table says, and returns it.
        - A key seen before returns the stored result and records nothing, also
          when several threads or processes send it at once (the unique key
          decides; losers read the winner's row).
        - A key seen before with another payment, amount or currency returns
          ``status="error"``, ``code="idempotency_error"`` and records nothing.

        Never raises for a decline. Raises ValueError for a request no PSP would
        accept (amount not a positive integer, currency not three letters, empty key).
        Safe inside the caller's transaction: the insert runs in a savepoint.
        Unlike a real PSP, the ledger row is part of that transaction: if the
        caller rolls back, the sandbox forgets the charge, and a re-run with the
        same key charges afresh (with the same outcome, except on the
        "recovers" card).
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"amount must be a positive integer in minor units, not {amount!r}")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise ValueError(f"currency must be a three-letter ISO 4217 code, not {currency!r}")
        if not idempotency_key:
            raise ValueError("an idempotency key is required")
        currency = currency.upper()

        # No look-up first: the unique key decides, and a repeated key (rare)
        # costs one refused insert instead of every charge costing a query.
        card = card_for(payment.card_last4)
        succeeds = card.succeeds
        if card.recovers:
            # "Earlier charge" is any key's charge for this payment: the first
            # re-charge declines, every later one succeeds.
            succeeds = SandboxCharge.objects.filter(payment_id=payment.pk).exists()
        charge = SandboxCharge(
            organization_id=payment.organization_id,
            payment_id=payment.pk,
            idempotency_key=idempotency_key,
            charge_id=_new_charge_id(),
            amount=amount,
            currency=currency,
            card_last4=payment.card_last4 or "",
            off_session=True,
        )
        set_outcome(charge, card, succeeds=succeeds)
        try:
            if connection.in_atomic_block:
                # The savepoint keeps the caller's transaction usable after a conflict.
                with transaction.atomic():
                    charge.save(force_insert=True)
            else:
                # Autocommit (the attempt runner): one statement, no BEGIN/COMMIT round trips.
                charge.save(force_insert=True)
        except IntegrityError:
            # This key was used before, or another request with it got there
            # first (PostgreSQL waited for it to commit before refusing ours):
            # answer with that charge.
            existing = SandboxCharge.objects.filter(idempotency_key=idempotency_key).first()
            if existing is None:
                raise
            return _replay(existing, payment=payment, amount=amount, currency=currency)
        if card.answer_lost:
            return ChargeResult(
                status=ChargeResult.ERROR,
                code="api_connection_error",
                message="The sandbox PSP did not answer in time (test card 0408); the charge may have gone through.",
            )
        return _result_from_charge(charge)

    def fetch_payment_state(self, *, payment) -> PaymentState:
        """Paid if the payment has a succeeded sandbox charge. Reads the ledger only; writes nothing.

        ``charge_id`` and ``currency`` are the first succeeded charge's;
        ``amount_paid`` totals the succeeded charges in that currency (more than
        one means the payment was charged more than once).
        """
        succeeded = SandboxCharge.objects.filter(payment_id=payment.pk, status=SandboxChargeStatus.SUCCEEDED)
        first = succeeded.order_by("created_at", "pk").only("charge_id", "currency").first()
        if first is None:
            return PaymentState(paid=False, detail="The sandbox has no succeeded charge for this payment.")
        totals = succeeded.filter(currency=first.currency).aggregate(total=Sum("amount"), count=Count("pk"))
        count = totals["count"]
        detail = f"Paid by sandbox charge {first.charge_id}."
        if count > 1:
            detail = f"Paid by {count} sandbox charges, the first {first.charge_id}."
        return PaymentState(
            paid=True, amount_paid=totals["total"], currency=first.currency, charge_id=first.charge_id, detail=detail
        )

    def create_checkout(self, *, payment, link, token: str, success_url: str, cancel_url: str, locale: str = "") -> CheckoutSession:
        """The sandbox's card form for ``link`` (payments/sandbox/checkout.py). Moves no money by itself."""
        return checkout.create_session(
            link=link, token=token, success_url=success_url, cancel_url=cancel_url, site_url=settings.SITE_URL
        )

    def confirm_checkout(self, *, payment, link, params) -> CheckoutResult:
        """Paid if the sandbox ledger holds the returned on-session charge for ``payment``. Read only."""
        return checkout.confirm(payment=payment, params=params)
