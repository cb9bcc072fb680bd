"""Each measure against a small data set computed by hand (Acme: Europe/Berlin, EUR)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError

from analytics import selectors
from analytics.selectors import Period
from tests.analytics.conftest import make_payment

pytestmark = pytest.mark.django_db

NOV = Period(date(2026, 11, 1), date(2026, 11, 30), "custom")


@pytest.fixture
def acme_data(org, rolled):
    # EUR: 4 payments, 10.00 + 20.00 + 30.00 + 40.00 failed
    make_payment(org, failed="2026-11-03 10:00", amount=1000, recovered_after=timedelta(hours=2, minutes=30),
                 attempt_sequence=1, category="insufficient_funds", provider="stripe")
    make_payment(org, failed="2026-11-04 10:00", amount=2000, recovered_after=timedelta(hours=30), recovered_amount=1500,
                 channel="email", attempt_sequence=2, category="expired_card", provider="razorpay")
    make_payment(org, failed="2026-11-05 10:00", amount=3000, status="recovering", category="insufficient_funds")
    make_payment(org, failed="2026-11-06 10:00", amount=4000, status="exhausted", category="insufficient_funds")
    # USD and GBP (the default currency EUR comes first, then alphabetical)
    make_payment(org, failed="2026-11-07 10:00", amount=500, currency="USD", recovered_after=timedelta(hours=5),
                 attempt_sequence=1)
    make_payment(org, failed="2026-11-07 10:00", amount=700, currency="GBP", status="failed")
    # Outside the period (October), and a held-out payment inside it: neither counts.
    make_payment(org, failed="2026-10-20 10:00", amount=99999)
    make_payment(org, failed="2026-11-08 10:00", amount=88888, holdout_group="holdout")
    rolled(org)


def test_summary_per_currency_with_the_default_currency_first(org, acme_data):
    eur, gbp, usd = selectors.summary(org, NOV)

    assert [eur["currency"], gbp["currency"], usd["currency"]] == ["EUR", "GBP", "USD"]
    assert (eur["failed_count"], eur["failed_amount"]) == (4, 10000)
    assert (eur["recovered_count"], eur["recovered_amount"]) == (2, 2500)
    assert eur["recovery_rate"] == 0.5
    assert eur["value_recovery_rate"] == 0.25
    # Revenue at risk: the open (recovering) payment only; exhausted is closed.
    assert (eur["at_risk_count"], eur["at_risk_amount"]) == (1, 3000)
    assert (gbp["failed_count"], gbp["recovered_count"], gbp["at_risk_amount"], gbp["recovery_rate"]) == (1, 0, 700, 0.0)
    assert (usd["recovered_amount"], usd["recovery_rate"], usd["median_hours_to_recover"]) == (500, 1.0, 5)


def test_time_to_recover_median_and_p90_by_nearest_rank(org, rolled):
    for hours in (2.5, 5, 30):
        make_payment(org, failed="2026-11-10 08:00", recovered_after=timedelta(hours=hours), attempt_sequence=1)
    rolled(org)

    (eur,) = selectors.summary(org, NOV)

    # Whole hours 2, 5, 30: the median is the 2nd of 3, the 90th percentile the 3rd.
    assert (eur["median_hours_to_recover"], eur["p90_hours_to_recover"]) == (5, 30)


def test_day_boundaries_follow_the_organizations_time_zone(org, rolled):
    # 23:30 UTC on 1 November is 00:30 on 2 November in Berlin.
    make_payment(org, failed="2026-11-01 23:30", amount=1234)
    rolled(org)

    first = selectors.summary(org, Period(date(2026, 11, 1), date(2026, 11, 1), "custom"))
    second = selectors.summary(org, Period(date(2026, 11, 2), date(2026, 11, 2), "custom"))

    assert first == []
    assert second[0]["failed_amount"] == 1234


def test_an_empty_period_and_an_org_without_data_have_no_measures(org, other_org, acme_data):
    empty = Period(date(2026, 9, 1), date(2026, 9, 7), "custom")

    assert selectors.summary(org, empty) == []
    assert selectors.breakdown(org, empty, "category") == []
    assert selectors.cohorts(org, empty) == []
    series = selectors.timeseries(org, empty)
    assert series == {"interval": "day", "series": []}
    assert selectors.summary(other_org, NOV) == []
    assert selectors.holdout(other_org, NOV)["comparison"] is None
    assert selectors.compliance(other_org, NOV)["brands"] == []


def test_another_organizations_payments_never_reach_a_measure(org, other_org, acme_data, rolled):
    make_payment(other_org, failed="2026-11-03 10:00", amount=777777, currency="EUR",
                 recovered_after=timedelta(hours=1), attempt_sequence=1)
    rolled(other_org)

    assert selectors.summary(org, NOV)[0]["failed_amount"] == 10000
    assert all(r["failed_amount"] < 777777 for r in selectors.breakdown(org, NOV, "provider"))
    assert selectors.summary(other_org, NOV)[0]["failed_amount"] == 777777


def test_breakdown_by_category_and_provider(org, acme_data):
    by_category = {(r["currency"], r["category"]): r for r in selectors.breakdown(org, NOV, "category")}
    by_provider = {(r["currency"], r["provider"]): r for r in selectors.breakdown(org, NOV, "provider")}

    funds = by_category[("EUR", "insufficient_funds")]
    assert (funds["failed_count"], funds["failed_amount"], funds["recovered_count"], funds["recovered_amount"]) == (3, 8000, 1, 1000)
    assert funds["recovery_rate"] == round(1 / 3, 4)
    assert funds["label"] == "Insufficient funds"
    assert by_category[("EUR", "expired_card")]["value_recovery_rate"] == 0.75
    assert by_provider[("EUR", "razorpay")]["failed_amount"] == 2000
    assert by_provider[("EUR", "stripe")]["failed_amount"] == 8000


def test_attribution_by_channel_and_attempt_number(org, acme_data):
    rows = selectors.breakdown(org, NOV, "channel")

    assert [(r["currency"], r["channel"], r["attempt_number"], r["recovered_count"], r["recovered_amount"]) for r in rows] == [
        ("EUR", "email", 2, 1, 1500), ("EUR", "psp", 1, 1, 1000), ("USD", "psp", 1, 1, 500),
    ]
    assert rows[0]["share_of_recovered_value"] == 0.6


def test_timeseries_has_every_day_and_the_rate(org, acme_data):
    period = Period(date(2026, 11, 3), date(2026, 11, 6), "custom")

    data = selectors.timeseries(org, period, currency="EUR")

    assert data["interval"] == "day"
    (eur,) = data["series"]
    assert [(p["start"], p["failed_amount"], p["recovered_amount"], p["recovery_rate"]) for p in eur["points"]] == [
        ("2026-11-03", 1000, 1000, 1.0), ("2026-11-04", 2000, 1500, 1.0),
        ("2026-11-05", 3000, 0, 0.0), ("2026-11-06", 4000, 0, 0.0),
    ]


def test_long_ranges_are_charted_by_week_from_monday(org, acme_data):
    period = Period(date(2026, 7, 1), date(2026, 11, 30), "custom")

    data = selectors.timeseries(org, period)

    eur = data["series"][0]
    assert data["interval"] == "week"
    assert eur["points"][0]["start"] == "2026-07-01"  # the period starts mid-week
    week = next(p for p in eur["points"] if p["start"] == "2026-11-02")  # Monday 2 Nov covers 3–6 Nov
    assert (week["failed_count"], week["failed_amount"]) == (4, 10000)


def test_cohorts_share_recovered_by_day_and_not_yet_for_young_weeks(org, rolled):
    # Week of Monday 2 November: four payments; recovered after 5 h, 2 days, 10 days; one never.
    for after in (timedelta(hours=5), timedelta(days=2), timedelta(days=10), None):
        make_payment(org, failed="2026-11-03 09:00", recovered_after=after, attempt_sequence=1 if after else None)
    rolled(org)

    (cohort,) = selectors.cohorts(org, NOV, today=date(2026, 11, 20))

    assert cohort["week"] == "2026-11-02" and cohort["payments"] == 4
    # The week's last day is 8 Nov: 12 days old on 20 Nov, so days 14 and 30 are not known yet.
    assert cohort["recovered_by_day"] == {"1": 0.25, "3": 0.5, "7": 0.5, "14": None, "30": None}


def test_periods_are_whole_days_in_the_organizations_time_zone(org):
    today = date(2026, 11, 28)

    assert selectors.parse_period({"period": "7d"}, org, today=today) == Period(date(2026, 11, 22), today, "7d")
    assert selectors.parse_period({}, org, today=today).days == 30
    assert selectors.parse_period({"start": "2026-01-01", "end": "2026-01-31"}, org, today=today).days == 31


@pytest.mark.parametrize("params, field", [
    ({"period": "1y"}, "period"),
    ({"period": "custom", "start": "2026-02-30", "end": "2026-03-01"}, "start"),
    ({"period": "custom", "start": "2026-03-01"}, "end"),
    ({"start": "2026-03-02", "end": "2026-03-01"}, "end"),
    ({"start": "2020-01-01", "end": "2026-03-01"}, "end"),
    ({"period": "7d", "start": "2026-03-01", "end": "2026-03-02"}, "period"),
])
def test_bad_periods_are_refused_with_the_field_named(org, params, field):
    with pytest.raises(ValidationError) as exc:
        selectors.parse_period(params, org)
    assert field in exc.value.message_dict


def test_bad_currency_is_refused():
    with pytest.raises(ValidationError):
        selectors.parse_currency({"currency": "EURO"})
    assert selectors.parse_currency({"currency": "gbp"}) == "GBP"
