"""The sandbox's hosted checkout: a card form Tinko serves at ``/pay/<token>/sandbox/``.

It plays the part of a PSP's hosted checkout page (Stripe Checkout, a
Razorpay Payment Link):

- :func:`create_session` signs what a PSP would keep server-side (the link,
  where to send the customer back) into the form's address, so the form
  cannot be pointed at another link or another return address;
- :func:`charge_card` records one on-session ``SandboxCharge`` per form
  submission (the form carries a fresh idempotency key, so a double click
  never charges twice); the outcome comes from the typed card's last four
  digits, as in the test-card table (README.md);
- :func:`confirm` decides a return from the ledger, never from the query
  string: the charge id must name a succeeded on-session charge of this
  payment.

On-session differs from off-session in one way: a card that needs
authentication (3155) succeeds, because the customer is there to
authenticate, which is the point of sending them to a checkout.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from django.core import signing
from django.db import IntegrityError, transaction

from payments.models import SandboxCharge, SandboxChargeStatus
from payments.providers import CheckoutResult, CheckoutSession
from payments.sandbox.cards import card_for, set_outcome

SESSION_SALT = "tinko.sandbox.checkout"
# A checkout session lives as long as a Stripe Checkout Session does by default.
SESSION_MAX_AGE = 24 * 3600
RETURN_PARAM = "sandbox_charge"


@dataclass(frozen=True)
class Session:
    link_id: int
    success_url: str
    cancel_url: str


def create_session(*, link, token: str, success_url: str, cancel_url: str, site_url: str) -> CheckoutSession:
    signed = signing.dumps({"l": link.pk, "s": success_url, "c": cancel_url}, salt=SESSION_SALT, compress=True)
    return CheckoutSession(url=f"{site_url}/pay/{token}/sandbox/?{urlencode({'session': signed})}", reference="")


def read_session(value: str, *, link) -> Session | None:
    """The signed session for ``link``; None when it is missing, forged, too old or another link's."""
    try:
        data = signing.loads(value or "", salt=SESSION_SALT, max_age=SESSION_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("l") != link.pk:
        return None
    return Session(link_id=link.pk, success_url=str(data.get("s", "")), cancel_url=str(data.get("c", "")))


def new_form_key(link) -> str:
    return f"sbx_co_{link.pk}_{secrets.token_hex(12)}"


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def charge_card(*, payment, link, number: str, idempotency_key: str) -> SandboxCharge:
    """Charge ``payment``'s outstanding amount to the typed card, on-session. MOVES (sandbox) MONEY.

    One charge per ``idempotency_key``: a repeat returns the first charge and
    records nothing. The key must belong to ``link`` (the form made it), else
    ValueError.
    """
    if not idempotency_key.startswith(f"sbx_co_{link.pk}_"):
        raise ValueError("This checkout form does not belong to this link.")
    last4 = number[-4:]
    card = card_for(last4)
    succeeds = card.succeeds or card.decline_code == "authentication_required" or card.answer_lost
    if card.recovers:
        succeeds = SandboxCharge.objects.filter(payment_id=payment.pk).exists()
    charge = SandboxCharge(
        organization_id=payment.organization_id,
        payment_id=payment.pk,
        idempotency_key=idempotency_key,
        charge_id=f"sbx_ch_{secrets.token_hex(12)}",
        amount=payment.amount,
        currency=payment.currency,
        card_last4=last4,
        off_session=False,
    )
    set_outcome(charge, card, succeeds=succeeds)
    try:
        with transaction.atomic():
            charge.save(force_insert=True)
    except IntegrityError:
        existing = SandboxCharge.objects.filter(idempotency_key=idempotency_key, payment_id=payment.pk).first()
        if existing is None:
            raise
        return existing
    return charge


def return_url(success_url: str, charge: SandboxCharge) -> str:
    joiner = "&" if "?" in success_url else "?"
    return f"{success_url}{joiner}{urlencode({RETURN_PARAM: charge.charge_id})}"


def confirm(*, payment, params) -> CheckoutResult:
    """Paid only if the ledger holds a succeeded on-session charge of ``payment`` with the returned id. Read only."""
    charge_id = (params.get(RETURN_PARAM) or "").strip() if params is not None else ""
    if not charge_id:
        return CheckoutResult(status=CheckoutResult.FAILED, detail="The sandbox returned no charge.")
    charge = SandboxCharge.objects.filter(charge_id=charge_id, payment_id=payment.pk, off_session=False).first()
    if charge is None:
        return CheckoutResult(status=CheckoutResult.FAILED, detail="The sandbox has no such charge for this payment.")
    if charge.status != SandboxChargeStatus.SUCCEEDED:
        return CheckoutResult(status=CheckoutResult.FAILED, charge_id=charge.charge_id, detail=charge.message)
    return CheckoutResult(
        status=CheckoutResult.PAID, charge_id=charge.charge_id, amount=charge.amount, currency=charge.currency,
        detail=f"Paid by sandbox charge {charge.charge_id}.",
    )
