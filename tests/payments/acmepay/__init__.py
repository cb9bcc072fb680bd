"""A made-up PSP, "AcmePay", packaged the way a new provider is: its class, registered on import.

Nothing else in Tinko names it; tests/payments/test_provider_registry.py lists it
in PROVIDER_MODULES (the one place a new PSP is registered) and checks that
ingestion, re-charges and the pay page take it from the registry.
"""

from __future__ import annotations

from payments.providers import ChargeResult, CheckoutSession, PaymentProvider, PaymentState, register_provider

CHARGES: dict[str, ChargeResult] = {}


@register_provider
class AcmePayProvider(PaymentProvider):
    name = "acmepay"
    label = "AcmePay"
    connected = False  # like the sandbox: no account to connect, so the test needs no credentials

    def charge_off_session(self, *, payment, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        """Charges once per idempotency key (a repeat answers with the first result)."""
        if idempotency_key not in CHARGES:
            CHARGES[idempotency_key] = ChargeResult(
                status="succeeded", charge_id=f"acme_{len(CHARGES) + 1}", amount=amount, currency=currency,
            )
        return CHARGES[idempotency_key]

    def fetch_payment_state(self, *, payment) -> PaymentState:
        return PaymentState(paid=False)

    def create_checkout(self, *, payment, link, token, success_url, cancel_url, locale=""):
        return CheckoutSession(url=f"https://pay.acmepay.example/{link.pk}", reference=f"acme_session_{link.pk}")
