"""A page view brings the rollups up to date by differences per changed payment: the figures are
exactly those of a full re-roll, applying them twice changes nothing, and the next refresh that is
not a page view's compacts the days they touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from analytics.models import DailyRollup, RecoveryTimeRollup, RolledPayment
from analytics.rollups import LIVE_MARGIN, ROLLED_KEY, refresh
from analytics.selectors import Facts
from recovery.models import Payment, RecoveryAttempt
from tests.analytics.conftest import at, make_payment
from tests.analytics.test_measures import NOV
from tests.analytics.test_rollups import _rollup_rows
from tinko import bulk

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["postgresql", "python"])
def engine(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setattr(bulk, "is_postgresql", lambda: False)
    return request.param


def figures(org):
    """What every panel of the dashboard is computed from, for November 2026."""
    facts = Facts(org, NOV)

    def ordered(rows):
        return sorted(tuple(sorted(row.items())) for row in rows)

    return ordered(facts.by_day_every_currency), ordered(facts.by_dimension), ordered(facts.recovery_times)


def live_view(org):
    return refresh(org, inline=True, margin=LIVE_MARGIN, live=True)


@pytest.fixture
def month(org):
    """Open, recovered, held-out and USD payments over November, rolled up in full."""
    payments = {
        "open": make_payment(org, failed="2026-11-03 10:00", amount=1000),
        "other_open": make_payment(org, failed="2026-11-03 12:00", amount=700, category="do_not_honor"),
        "recovered": make_payment(org, failed="2026-11-04 09:00", amount=2500, recovered_after=timedelta(hours=5),
                                  attempt_sequence=1),
        "held_out": make_payment(org, failed="2026-11-04 11:00", amount=900, holdout_group="holdout"),
        "usd": make_payment(org, failed="2026-11-10 10:00", amount=3000, currency="USD"),
        "late": make_payment(org, failed="2026-11-20 10:00", amount=400),
    }
    Payment.objects.filter(organization=org).update(updated_at=timezone.now() - timedelta(hours=1))
    refresh(org, full=True)
    return {name: Payment.objects.get(pk=payment.pk) for name, payment in payments.items()}


def save(payment):
    """As every service that changes a payment does: updated_at moves."""
    payment.updated_at = timezone.now()
    payment.save()


def change_everything(org, p):
    """A recovery by the second attempt, a new failure, a re-classification, a moved first failure,
    a cancellation and a partial recovery amount corrected."""
    attempt = None
    for seq in (1, 2):
        attempt = RecoveryAttempt.objects.create(
            organization=org, payment=p["open"], sequence=seq, kind="auto_retry", channel="psp",
            status="succeeded" if seq == 2 else "failed", scheduled_for=p["open"].first_failed_at + timedelta(hours=seq),
            reason="test", amount=1000, currency="EUR")
    p["open"].status, p["open"].recovered_attempt, p["open"].recovered_channel = "recovered", attempt, "psp"
    p["open"].recovered_at, p["open"].recovered_amount = p["open"].first_failed_at + timedelta(days=2), 1000
    save(p["open"])
    make_payment(org, failed="2026-11-12 10:00", amount=5000)
    p["other_open"].category = "insufficient_funds"
    save(p["other_open"])
    p["late"].first_failed_at = p["late"].last_failed_at = at("2026-11-05 08:00")
    save(p["late"])
    p["usd"].status = "cancelled"
    save(p["usd"])
    p["recovered"].recovered_amount = 2000
    save(p["recovered"])


def test_a_page_views_differences_give_the_figures_of_a_full_re_roll(org, month, engine):
    before = figures(org)
    change_everything(org, month)

    assert live_view(org) is not None
    live = figures(org)
    refresh(org, full=True)

    assert live == figures(org)
    assert live != before


def test_a_page_view_adds_difference_rows_instead_of_re_rolling_the_days(org, month, engine):
    rows = DailyRollup.objects.filter(organization=org).count()
    month["open"].status = "cancelled"
    save(month["open"])

    live_view(org)

    # One row takes the payment out of its old group, one puts it in the new: the day's other rows stay.
    assert DailyRollup.objects.filter(organization=org).count() == rows + 2
    assert DailyRollup.objects.filter(organization=org, payments=-1, amount=-1000).count() == 1
    assert RolledPayment.objects.get(payment_id=month["open"].pk).outcome == "closed"


def test_differences_applied_twice_change_nothing_the_second_time(org, month, engine):
    change_everything(org, month)
    live_view(org)
    once = (_rollup_rows(org), figures(org))
    cache.delete(ROLLED_KEY.format(org.pk))  # forget which versions were rolled: all are found again

    live_view(org)

    assert (_rollup_rows(org), figures(org)) == once


def test_the_next_refresh_that_is_not_a_page_views_compacts_the_days_touched(org, month, engine):
    change_everything(org, month)
    live_view(org)
    assert DailyRollup.objects.filter(organization=org, payments__lt=0).exists()

    refresh(org)
    compacted = _rollup_rows(org)
    refresh(org, full=True)

    assert compacted == _rollup_rows(org)
    assert not DailyRollup.objects.filter(organization=org, payments__lt=0).exists()
    assert not RecoveryTimeRollup.objects.filter(organization=org, payments__lt=0).exists()


def test_a_group_emptied_by_differences_is_not_shown(org, month, engine):
    month["usd"].first_failed_at = month["usd"].last_failed_at = at("2026-12-10 10:00")  # out of November
    save(month["usd"])

    live_view(org)

    assert "USD" not in {row["currency"] for row in Facts(org, NOV).by_day_every_currency}
