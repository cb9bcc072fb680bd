"""The dashboard's figures are live and add up: a failure or a recovery shows on the next view, an
in-flight refresh is said, held-out payments are shown beside the measures, and every panel agrees."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connections, transaction
from django.utils import timezone

from analytics import selectors
from analytics.models import RollupState
from analytics.rollups import refresh
from analytics.selectors import Period
from tests.analytics.conftest import make_payment
from tests.recovery.conftest import Api, report

pytestmark = pytest.mark.django_db


def org_today(org):
    """Today in the organization's time zone, where the rollups count days (Berlin is a day ahead of UTC after 23:00)."""
    return timezone.localdate(timezone=ZoneInfo(org.timezone))


def kpi(content, name):
    return re.search(rf'data-kpi="{name}">([^<]+)<', content).group(1)


def kpi_count(content, name):
    return int(re.search(rf'data-kpi-count="{name}">\s*(\d+)', content).group(1))


def test_the_dashboard_shows_a_failure_and_its_recovery_on_the_next_view(owner_client, org, api_key):
    api = Api(api_key[1])
    first = owner_client.get("/console/?period=7d").content.decode()  # the rollups are now current, and empty
    assert 'data-empty="summary"' in first

    failed = api.post("events/payment_failed", report(reference="order-live", amount=4999, currency="EUR"))
    assert failed.status_code == 201
    after_failure = owner_client.get("/console/?period=7d").content.decode()

    paid = api.post("payments/order-live/paid", {})
    assert paid.status_code == 200, paid.content
    after_recovery = owner_client.get("/console/?period=7d").content.decode()

    assert (kpi(after_failure, "failed"), kpi(after_failure, "recovered")) == ("€49.99", "€0.00")
    assert (kpi(after_recovery, "failed"), kpi(after_recovery, "recovered")) == ("€49.99", "€49.99")
    assert kpi_count(after_recovery, "recovered") == 1
    assert 'data-freshness="live"' in after_recovery


def test_the_api_figures_are_live_too(org, api_key):
    api = Api(api_key[1])
    api.get("analytics/summary", {"period": "7d"})
    api.post("events/payment_failed", report(reference="order-api", amount=1000, currency="EUR"))
    api.post("payments/order-api/paid", {})

    (eur,) = api.get("analytics/summary", {"period": "7d"}).json()["currencies"]

    assert (eur["failed_count"], eur["recovered_count"], eur["recovered_amount"]) == (1, 1, 1000)


@pytest.mark.django_db(transaction=True)
def test_a_refresh_in_progress_is_said_with_the_time_of_the_figures(owner_client, org):
    make_payment(org, failed=timezone.now().strftime("%Y-%m-%d %H:%M"), amount=1000)
    refresh(org, full=True)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        # Another refresh (the minute job) holds the organization's rollup state.
        try:
            with transaction.atomic():
                RollupState.objects.select_for_update().get(organization=org)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        content = owner_client.get("/console/?period=7d").content.decode()
    finally:
        release.set()
        holder.join()

    assert 'data-freshness="updating"' in content
    assert "Updating: these figures are as of" in content
    assert 'data-freshness="live"' in owner_client.get("/console/?period=7d").content.decode()


@pytest.fixture
def experiment(org):
    """November 2026, EUR and USD: worked-on, held-out and outside-the-experiment payments."""
    for i in range(6):
        make_payment(org, failed="2026-11-03 10:00", amount=1000, holdout_group="treatment",
                     recovered_after=timedelta(hours=2) if i < 4 else None, attempt_sequence=1 if i < 4 else None)
    for i in range(3):
        make_payment(org, failed="2026-11-10 10:00", amount=2000, holdout_group="holdout",
                     recovered_after=timedelta(days=2) if i < 1 else None)
    make_payment(org, failed="2026-11-12 10:00", amount=500, currency="USD", holdout_group="holdout")
    for i in range(2):
        make_payment(org, failed="2026-11-20 10:00", amount=3000, currency="USD", category="expired_card",
                     recovered_after=timedelta(hours=5) if i == 0 else None, attempt_sequence=1 if i == 0 else None)
    make_payment(org, failed="2026-10-20 10:00", amount=800, holdout_group="holdout")  # outside the period
    refresh(org, full=True)


NOV = Period(start=timezone.datetime(2026, 11, 1).date(), end=timezone.datetime(2026, 11, 30).date(), name="custom")


def test_key_figures_holdout_panel_and_tables_reconcile(org, experiment):
    data = selectors.dashboard(org, NOV)
    eur, usd = data["summary"]
    h = data["holdout"]

    assert (eur["failed_count"], eur["held_out_count"], eur["payments_count"]) == (6, 3, 9)
    assert (usd["failed_count"], usd["held_out_count"], usd["payments_count"]) == (2, 1, 3)
    assert (eur["held_out_amount"], eur["held_out_recovered_count"]) == (6000, 1)
    # The holdout panel's groups add up to every payment of the period, as the key figures do.
    assert (h["treatment_count"], h["holdout_count"], h["outside_count"], h["total_count"]) == (6, 4, 2, 12)
    assert h["total_count"] == sum(m["payments_count"] for m in data["summary"])
    assert h["holdout_count"] == sum(m["held_out_count"] for m in data["summary"])
    assert h["treatment_count"] + h["outside_count"] == sum(m["failed_count"] for m in data["summary"])
    for m in data["summary"]:
        code = m["currency"]
        for by in ("category", "provider"):
            rows = [r for r in data["breakdowns"][by] if r["currency"] == code]
            assert sum(r["failed_count"] for r in rows) == m["failed_count"]
            assert sum(r["failed_amount"] for r in rows) == m["failed_amount"]
            assert sum(r["recovered_amount"] for r in rows) == m["recovered_amount"]
        channel = [r for r in data["breakdowns"]["channel"] if r["currency"] == code]
        assert sum(r["recovered_count"] for r in channel) == m["recovered_count"]
        (series,) = [s for s in data["timeseries"]["series"] if s["currency"] == code]
        assert sum(p["failed_count"] for p in series["points"]) == m["failed_count"]
        assert sum(p["recovered_amount"] for p in series["points"]) == m["recovered_amount"]
    assert sum(c["payments"] for c in data["cohorts"]) == sum(m["failed_count"] for m in data["summary"])


def test_the_page_shows_held_out_payments_beside_the_key_figures(owner_client, org, experiment):
    content = owner_client.get("/console/?start=2026-11-01&end=2026-11-30").content.decode()

    assert kpi_count(content, "failed") == 6
    assert "+ 3 held out, 9 in all" in content
    assert 'data-holdout-count="total">12<' in content
    # 4 held out is below the minimum: no claim about the difference.
    assert 'data-holdout="not-enough"' in content and "Not enough data yet." in content
    assert 'data-holdout="difference"' not in content


def test_key_figures_compare_with_the_previous_period(org):
    # October 2026 (31 days before a 31-day custom period of November–1 December): €10 failed, €5 recovered.
    make_payment(org, failed="2026-10-10 10:00", amount=500, recovered_after=timedelta(hours=1), attempt_sequence=1)
    make_payment(org, failed="2026-10-11 10:00", amount=500)
    make_payment(org, failed="2026-11-10 10:00", amount=1000, recovered_after=timedelta(hours=1), attempt_sequence=1)
    make_payment(org, failed="2026-11-11 10:00", amount=500)
    refresh(org, full=True)
    period = Period(start=timezone.datetime(2026, 11, 1).date(), end=timezone.datetime(2026, 11, 30).date(), name="custom")

    (eur,) = selectors.dashboard(org, period)["summary"]

    assert selectors.previous_period(period).start.isoformat() == "2026-10-02"
    assert eur["change"]["failed_amount"] == 0.5  # €15 against €10
    assert eur["change"]["recovered_amount"] == 1.0  # €10 against €5
    assert eur["change"]["recovery_rate"] == 0.0  # 50% against 50%
    assert eur["change"]["previous"]["failed_count"] == 2


def test_without_a_previous_period_there_is_nothing_to_compare(owner_client, org):
    make_payment(org, failed=timezone.now().strftime("%Y-%m-%d %H:%M"), amount=1000)

    content = owner_client.get("/console/?period=7d").content.decode()

    assert "no earlier data" in content


def test_a_view_seconds_after_a_change_re_rolls_nothing_but_a_late_commit_is_still_caught(
        org, django_capture_on_commit_callbacks):
    from analytics.rollups import LIVE_MARGIN
    from recovery.models import Payment

    now = timezone.now().strftime("%Y-%m-%d %H:%M")
    first, second = make_payment(org, failed=now), make_payment(org, failed=now)
    refresh(org, full=True)
    Payment.objects.filter(pk=first.pk).update(status="cancelled", updated_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        after_change = refresh(org, margin=LIVE_MARGIN)
    with django_capture_on_commit_callbacks(execute=True):
        next_view = refresh(org, margin=LIVE_MARGIN)
    # A transaction that set updated_at before that refresh started but committed after it.
    through = RollupState.objects.get(organization=org).refreshed_through
    Payment.objects.filter(pk=second.pk).update(status="cancelled", updated_at=through - timedelta(seconds=2))
    with django_capture_on_commit_callbacks(execute=True):
        after_late_commit = refresh(org, margin=LIVE_MARGIN)

    assert (after_change, next_view, after_late_commit) == (1, 0, 1)
    today = org_today(org)
    (eur,) = selectors.summary(org, Period(today, today, "custom"))
    assert (eur["at_risk_count"], eur["failed_count"]) == (0, 2)


def test_a_page_view_leaves_the_card_network_counts_to_the_minute_job(org):
    from django.db.models import Sum

    from analytics.models import ComplianceRollup, DailyRollup
    from analytics.rollups import LIVE_MARGIN

    now = timezone.now().strftime("%Y-%m-%d %H:%M")
    make_payment(org, failed=now)
    refresh(org, full=True)
    make_payment(org, failed=now)  # a new failure, then a page view

    def counted():
        daily = DailyRollup.objects.filter(organization=org).aggregate(n=Sum("payments"))["n"]
        network = ComplianceRollup.objects.filter(organization=org).aggregate(n=Sum("payments"))["n"]
        return daily, network, RollupState.objects.get(organization=org).compliance_pending

    refresh(org, margin=LIVE_MARGIN, live=True)
    after_view = counted()
    refresh(org)  # the minute job
    after_job = counted()

    today = org_today(org).isoformat()
    assert after_view == (2, 1, [today])
    assert after_job == (2, 2, [])
