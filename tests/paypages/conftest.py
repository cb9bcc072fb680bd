"""A failed Acme payment with a live pay link, as the recovery engine leaves it after its first message."""

from __future__ import annotations

import pytest
from django.utils import timezone

from recovery.models import Customer, Payment
from recovery.services import create_link


def make_payment(org, *, reference="order-1", category="insufficient_funds", provider="sandbox", locale="en-US",
                 name="Ada Lovelace", amount=4999, currency="USD", **extra) -> Payment:
    now = timezone.now()
    customer = Customer.objects.create(
        organization=org, key=f"{reference}@example.com", email=f"{reference}@example.com", name=name, locale=locale,
    )
    return Payment.objects.create(
        organization=org, reference=reference, provider=provider, customer=customer, amount=amount, currency=currency,
        description="Pro plan, March", category=category, status="recovering", first_failed_at=now,
        last_failed_at=now, card_brand="visa", card_last4="9995", **extra,
    )


@pytest.fixture
def payment(org):
    return make_payment(org)


@pytest.fixture
def link_and_token(payment):
    return create_link(payment=payment)


@pytest.fixture
def token(link_and_token):
    return link_and_token[1]


@pytest.fixture
def site(settings):
    settings.SITE_URL = "http://testserver"
    return settings
