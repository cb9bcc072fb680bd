"""Holdout: drawn at random when a payment is first reported, recorded, respected by the planner, its interval right."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from analytics import selectors
from analytics.selectors import Period
from payments.models import Payment
from recovery import sql
from recovery.holdout import draw_holdout_group
from recovery.ingestion import default_policy, record_failures
from recovery.models import RecoveryAttempt, RetryPolicy
from recovery.planner import HOLDOUT_REASON
from recovery.reports import parse_report
from tests.analytics.conftest import make_payment
from tests.analytics.test_measures import NOV
from tests.recovery.conftest import report

pytestmark = pytest.mark.django_db


class FixedRandom:
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def test_no_experiment_means_no_group():
    assert draw_holdout_group(RetryPolicy(holdout_percent=0)) == ""


def test_the_draw_compares_a_uniform_number_with_the_percentage():
    policy = RetryPolicy(holdout_percent=10)

    assert draw_holdout_group(policy, rng=FixedRandom(0.0999)) == "holdout"
    assert draw_holdout_group(policy, rng=FixedRandom(0.10)) == "treatment"


def test_the_draw_holds_out_about_the_percentage():
    policy = RetryPolicy(holdout_percent=20)
    rng = random.Random(42)

    groups = [draw_holdout_group(policy, rng=rng) for _ in range(10_000)]

    assert 0.18 < groups.count("holdout") / len(groups) < 0.22
    assert set(groups) == {"holdout", "treatment"}


def _with_holdout(org, percent):
    policy = default_policy(org)
    policy.holdout_percent = percent
    policy.save()
    return policy


def _ingest(org, n, prefix="order"):
    return record_failures(organization=org, reports=[parse_report(report(reference=f"{prefix}-{i}")) for i in range(n)])


@pytest.mark.parametrize("fast", [True, False], ids=["postgresql-copy-path", "orm-path"])
def test_held_out_payments_are_recorded_and_get_no_recovery_action(org, monkeypatch, fast):
    _with_holdout(org, 50)
    if not fast:
        monkeypatch.setattr(sql, "is_postgresql", lambda: False)

    results = _ingest(org, 40)

    payments = Payment.objects.filter(organization=org)
    held = payments.filter(holdout_group="holdout")
    treated = payments.filter(holdout_group="treatment")
    assert held.exists() and treated.exists()
    assert held.count() + treated.count() == 40
    assert not RecoveryAttempt.objects.filter(payment__in=held).exists()
    assert all(p.status == "failed" and p.status_reason == HOLDOUT_REASON for p in held)
    assert RecoveryAttempt.objects.filter(payment__in=treated).count() == treated.count()
    assert all(r.next_attempt is None for r in results if r.payment.holdout_group == "holdout")


def test_the_group_is_drawn_once_and_kept_on_later_failures(org):
    _with_holdout(org, 50)
    _ingest(org, 30)
    before = dict(Payment.objects.values_list("reference", "holdout_group"))

    _ingest(org, 30)  # the same references fail again

    assert dict(Payment.objects.values_list("reference", "holdout_group")) == before
    assert not RecoveryAttempt.objects.filter(payment__holdout_group="holdout").exists()


def test_payments_without_an_experiment_have_no_group(org):
    _ingest(org, 3)

    assert set(Payment.objects.values_list("holdout_group", flat=True)) == {""}


def test_the_holdout_percentage_is_part_of_the_policy_api(api_key, org):
    from tests.recovery.conftest import Api

    api = Api(api_key[1])
    policy = default_policy(org)

    ok = api.patch(f"retry_policies/{policy.pk}", {"holdout_percent": 10})
    too_much = api.patch(f"retry_policies/{policy.pk}", {"holdout_percent": 80})

    assert ok.status_code == 200 and ok.json()["holdout_percent"] == 10
    assert too_much.status_code == 400 and "holdout_percent" in too_much.json()["error"]["fields"]
    policy.refresh_from_db()
    assert policy.holdout_percent == 10


def test_wilson_interval_by_hand():
    # 1 of 14: p = 0.0714286, z² = 3.841459, denominator 1 + z²/n = 1.2743899
    # centre = (0.0714286 + 3.841459/28) / 1.2743899 = 0.1637046
    # half = 1.959964 · sqrt(0.0714286·0.9285714/14 + 3.841459/784) / 1.2743899 = 0.1509824
    low, high = selectors.wilson_interval(1, 14)

    assert (round(low, 4), round(high, 4)) == (0.0127, 0.3147)


@pytest.mark.parametrize(
    "treated, treated_recovered, held_out, held_out_recovered, low, high",
    [
        # Newcombe (1998), "Interval estimation for the difference between independent proportions",
        # Statistics in Medicine 17:873–890, Table II, method 10 (hybrid score), examples (a)–(f).
        (70, 56, 80, 48, 0.0524, 0.3339),
        (10, 9, 10, 3, 0.1705, 0.8090),
        (7, 6, 7, 2, 0.0582, 0.8062),
        (56, 5, 29, 0, -0.0381, 0.1926),
        (10, 0, 20, 0, -0.1611, 0.2775),
        (10, 10, 20, 0, 0.6791, 1.0),
    ],
)
def test_newcombe_interval_matches_the_published_values(treated, treated_recovered, held_out, held_out_recovered,
                                                         low, high):
    result = selectors.holdout_interval(treated=treated, treated_recovered=treated_recovered, held_out=held_out,
                                        held_out_recovered=held_out_recovered)

    assert (result["ci_low"], result["ci_high"]) == (low, high)


def test_interval_on_a_large_experiment():
    # 450/1000 vs 30/100: Wilson (0.41942, 0.48097) and (0.21895, 0.39585);
    # d = 0.15, low = 0.15 − sqrt(0.03058² + 0.09585²) = 0.0494, high = 0.15 + sqrt(0.03097² + 0.08105²) = 0.2368
    result = selectors.holdout_interval(treated=1000, treated_recovered=450, held_out=100, held_out_recovered=30)

    assert result == {
        "treatment_rate": 0.45, "holdout_rate": 0.3, "difference": 0.15, "ci_low": 0.0494, "ci_high": 0.2368,
        "enough_data": True, "min_payments": 30, "significant": True,
    }


def test_below_the_minimum_there_is_not_enough_data_and_nothing_is_significant():
    # The demo: 14 held-out payments, 1 recovered, against a clearly better treatment group.
    small = selectors.holdout_interval(treated=200, treated_recovered=70, held_out=14, held_out_recovered=1)
    at_minimum = selectors.holdout_interval(treated=200, treated_recovered=70, held_out=30, held_out_recovered=2)

    assert selectors.HOLDOUT_MIN_PAYMENTS == 30
    assert small["enough_data"] is False and small["significant"] is False
    assert at_minimum["enough_data"] is True and at_minimum["significant"] is True


def test_an_interval_that_includes_zero_is_not_significant():
    result = selectors.holdout_interval(treated=40, treated_recovered=20, held_out=30, held_out_recovered=12)

    assert result["ci_low"] < 0 < result["ci_high"]
    assert result["significant"] is False


def test_no_interval_without_both_groups():
    assert selectors.holdout_interval(treated=10, treated_recovered=5, held_out=0, held_out_recovered=0) is None


def test_the_dashboard_compares_the_groups_and_keeps_held_out_payments_out_of_the_measures(org, rolled):
    for recovered in (True, True, True, False):
        make_payment(org, failed="2026-11-03 10:00", holdout_group="treatment",
                     recovered_after=timedelta(hours=3) if recovered else None, attempt_sequence=1 if recovered else None)
    for recovered in (True, False):
        make_payment(org, failed="2026-11-03 10:00", holdout_group="holdout",
                     recovered_after=timedelta(days=3) if recovered else None)
    rolled(org)

    data = selectors.holdout(org, NOV)
    (eur,) = selectors.summary(org, NOV)

    assert (data["treatment_count"], data["treatment_recovered"], data["holdout_count"], data["holdout_recovered"]) == (4, 3, 2, 1)
    assert (data["comparison"]["treatment_rate"], data["comparison"]["holdout_rate"], data["comparison"]["difference"]) == (0.75, 0.5, 0.25)
    assert eur["failed_count"] == 4
    assert selectors.holdout(org, Period(NOV.start, NOV.start, "custom"))["comparison"] is None


def test_the_payments_api_tells_a_held_out_payment(org, api_key):
    from tests.recovery.conftest import Api

    _with_holdout(org, 50)
    _ingest(org, 20)
    held = Payment.objects.filter(organization=org, holdout_group="holdout").first()

    body = Api(api_key[1]).get(f"payments/{held.reference}").json()

    assert body["holdout_group"] == "holdout"
    assert body["status"] == "failed"
