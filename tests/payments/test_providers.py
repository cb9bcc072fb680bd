"""The provider registry: which provider a name or a payment gets, and the reasons when none can."""

from __future__ import annotations

import pytest

from payments.providers import (
    ChargeResult,
    PaymentProvider,
    PaymentState,
    ProviderUnavailable,
    get_provider,
    recharge_provider,
    register_provider,
    registered_providers,
)
from payments.sandbox.provider import SandboxProvider
from recovery.models import Payment


def test_sandbox_is_registered_by_its_package():
    assert registered_providers()["sandbox"] is SandboxProvider


def test_get_provider_returns_the_named_provider():
    provider = get_provider("sandbox")

    assert isinstance(provider, SandboxProvider)
    assert provider.name == "sandbox"


def test_get_provider_refuses_an_unknown_name_in_plain_language():
    with pytest.raises(ProviderUnavailable, match="no payment provider called “adyen”"):
        get_provider("adyen")


def test_a_second_provider_cannot_take_a_registered_name():
    class Impostor(PaymentProvider):
        name = "sandbox"

        def charge_off_session(self, *, payment, amount, currency, idempotency_key):
            return ChargeResult(status="succeeded")

        def fetch_payment_state(self, *, payment):
            return PaymentState(paid=True)

    with pytest.raises(ValueError, match="already registered"):
        register_provider(Impostor)

    assert registered_providers()["sandbox"] is SandboxProvider


def test_sandbox_payment_is_recharged_by_the_sandbox():
    provider, reason = recharge_provider(Payment(provider="sandbox"))

    assert isinstance(provider, SandboxProvider)
    assert reason == ""


@pytest.mark.django_db
def test_stripe_payment_cannot_be_recharged_until_an_account_is_connected(org):
    assert recharge_provider(Payment(provider="stripe", organization=org)) == (
        None,
        "Automatic re-charges through Stripe need a connected Stripe account (Console → Payment providers)",
    )


@pytest.mark.django_db
def test_razorpay_payment_cannot_be_recharged_until_an_account_is_connected(org):
    assert recharge_provider(Payment(provider="razorpay", organization=org)) == (
        None,
        "Automatic re-charges through Razorpay need a connected Razorpay account (Console → Payment providers)",
    )


def test_payment_made_outside_a_psp_cannot_be_recharged():
    assert recharge_provider(Payment(provider="other")) == (
        None,
        "Tinko cannot re-charge payments made outside a connected PSP",
    )
