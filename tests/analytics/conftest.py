"""A small data set whose every measure is computed by hand in the tests.

Acme (fixtures in tests/conftest.py) runs on Europe/Berlin and EUR. Payments
are written straight to the database with the facts the measures read, so
each test states exactly what it counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from itertools import count

import pytest

from analytics.rollups import refresh
from recovery.models import Payment, RecoveryAttempt

UTC = dt_timezone.utc
_numbers = count(1)


def at(text: str) -> datetime:
    """An aware UTC datetime from 'YYYY-MM-DD HH:MM'."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def make_payment(org, *, failed: str, amount: int = 1000, currency: str = "EUR", status: str = "recovering",
                 category: str = "insufficient_funds", provider: str = "stripe", recovered_after: timedelta | None = None,
                 recovered_amount: int | None = None, channel: str = "psp", attempt_sequence: int | None = None,
                 holdout_group: str = "", card_brand: str = "visa") -> Payment:
    failed_at = at(failed)
    n = next(_numbers)
    payment = Payment.objects.create(
        organization=org, reference=f"p-{n}", provider=provider, amount=amount, currency=currency, category=category,
        status="recovered" if recovered_after is not None else status, first_failed_at=failed_at,
        last_failed_at=failed_at, holdout_group=holdout_group, card_brand=card_brand,
    )
    if recovered_after is not None:
        attempt = None
        if attempt_sequence:
            for seq in range(1, attempt_sequence + 1):
                attempt = RecoveryAttempt.objects.create(
                    organization=org, payment=payment, sequence=seq,
                    kind="auto_retry" if channel == "psp" else "notification", channel=channel,
                    status="succeeded" if seq == attempt_sequence else "failed",
                    scheduled_for=failed_at + timedelta(hours=seq), reason="test", amount=amount, currency=currency,
                )
        payment.recovered_at = failed_at + recovered_after
        payment.recovered_amount = recovered_amount if recovered_amount is not None else amount
        payment.recovered_channel = channel if attempt_sequence else ""
        payment.recovered_attempt = attempt
        payment.save()
    return payment


@pytest.fixture
def rolled():
    """Call after creating payments: brings the organization's rollups up to date."""
    def run(org):
        refresh(org, full=True)
    return run
