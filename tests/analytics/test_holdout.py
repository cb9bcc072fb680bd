"""Holdout: drawn at random when a payment is first reported, recorded, respected by the planner, its interval right."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from analytics import selectors
from analytics.holdout import draw_holdout_group
from analytics.selectors import Period
from payments.models import Payment
from recovery import sql
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


def test_interval_on_a_known_example():
    # p1 = 450/1000 = 0.45, p2 = 30/100 = 0.30, d = 0.15
    # se = sqrt(0.45·0.55/1000 + 0.30·0.70/100) = sqrt(0.0002475 + 0.0021) = 0.0484510
    # half-width = 1.959964 · 0.0484510 = 0.0949622 → (0.0550, 0.2450)
    result = selectors.holdout_interval(treated=1000, treated_recovered=450, held_out=100, held_out_recovered=30)

    assert result == {
        "treatment_rate": 0.45, "holdout_rate": 0.3, "difference": 0.15, "ci_low": 0.055, "ci_high": 0.245,
        "significant": True,
    }


def test_an_interval_that_includes_zero_is_not_significant():
    result = selectors.holdout_interval(treated=20, treated_recovered=10, held_out=10, held_out_recovered=4)

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
