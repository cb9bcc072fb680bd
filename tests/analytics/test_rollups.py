"""Rollups follow the payments: changed days re-rolled, a time-zone change re-rolls all; the compliance meter."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from analytics import selectors
from analytics.models import DailyRollup, RollupState
from analytics.rollups import hours_bucket, refresh
from analytics.selectors import Period
from recovery.models import NetworkLimit, Payment
from recovery.models import FailureEvent, RecoveryAttempt
from tests.analytics.conftest import at, make_payment
from tests.analytics.test_measures import NOV

pytestmark = pytest.mark.django_db


def test_a_changed_payment_is_re_rolled_on_the_next_refresh(org, rolled):
    payment = make_payment(org, failed="2026-11-03 10:00", amount=1000)
    quiet = make_payment(org, failed="2026-11-10 10:00", amount=500)
    quiet.updated_at = timezone.now() - timedelta(hours=2)
    quiet.save()
    rolled(org)
    state = RollupState.objects.get(organization=org)
    state.refreshed_through = timezone.now() - timedelta(hours=1)
    state.save()
    payment.status = "recovered"
    payment.recovered_at = payment.first_failed_at + timedelta(hours=1)
    payment.recovered_amount = 1000
    payment.updated_at = timezone.now()
    payment.save()

    days = refresh(org)

    assert days == 1
    assert selectors.summary(org, NOV)[0]["recovered_amount"] == 1000


def test_nothing_changed_means_nothing_re_rolled(org, rolled):
    p = make_payment(org, failed="2026-11-03 10:00")
    p.updated_at = timezone.now() - timedelta(hours=1)
    p.save()
    rolled(org)

    assert refresh(org) == 0


def test_a_recent_refresh_is_not_repeated_within_max_age(org, rolled):
    rolled(org)
    make_payment(org, failed="2026-11-03 10:00")

    assert refresh(org, max_age=timedelta(minutes=1)) is None
    assert refresh(org) == 1


def test_a_time_zone_change_re_rolls_every_day(org, rolled):
    make_payment(org, failed="2026-11-01 23:30")  # 2 November in Berlin, 1 November in New York
    rolled(org)
    assert DailyRollup.objects.get(organization=org).day == date(2026, 11, 2)

    org.timezone = "America/New_York"
    org.save()
    refresh(org)

    assert DailyRollup.objects.get(organization=org).day == date(2026, 11, 1)


def test_the_dashboard_refreshes_stale_rollups_itself(org, owner_client):
    make_payment(org, failed=timezone.now().strftime("%Y-%m-%d %H:%M"), amount=4321)

    content = owner_client.get("/console/?period=7d").content.decode()

    assert "€43.21" in content


def test_hours_buckets_keep_cohort_boundaries_exact():
    assert [hours_bucket(h * 3600) for h in (0, 23.9, 47, 50, 71.9, 72, 335, 340, 719.5, 720)] == [
        0, 23, 47, 48, 66, 72, 330, 336, 696, 720,
    ]


def test_compliance_meter_counts_reattempts_refusals_and_advice_codes(org, rolled):
    card = make_payment(org, failed="2026-11-03 10:00", card_brand="mastercard")
    start = at("2026-11-03 10:00")
    # Three automatic re-charges within 24 hours, a fourth two days later, one cancelled (not counted).
    for seq, (hours, status) in enumerate([(1, "failed"), (5, "failed"), (20, "failed"), (60, "failed"), (70, "cancelled")], 1):
        RecoveryAttempt.objects.create(organization=org, payment=card, sequence=seq, kind="auto_retry", channel="psp",
                                       status=status, scheduled_for=start + timedelta(hours=hours), reason="test",
                                       amount=card.amount, currency=card.currency)
    # MAC 24 asked to wait 12 hours before the next re-charge at +20 h: honoured.
    FailureEvent.objects.create(organization=org, payment=card, source="attempt", occurred_at=start + timedelta(hours=5),
                                network_advice_code="24", min_delay_seconds=12 * 3600, category="insufficient_funds",
                                action="auto_retry", reason="test")
    stopped = make_payment(org, failed="2026-11-04 10:00", card_brand="visa",
                           status="failed")
    stopped.status_reason = "No further action (card-network limit: at most 15 automatic reattempts per card)."
    stopped.limit_code = NetworkLimit.VISA_15_30D
    stopped.save()
    FailureEvent.objects.create(organization=org, payment=stopped, source="api", occurred_at=at("2026-11-04 10:00"),
                                network_stop=True, category="do_not_retry", action="stop", reason="test")
    rolled(org)

    c = selectors.compliance(org, NOV)

    assert c["most_auto_attempts"] == 4
    assert c["mastercard_peak_24h"] == 3
    assert (c["network_stops"], c["limit_refusals"], c["advice_waits"], c["advice_waits_honoured"]) == (1, 1, 1, 1)
    mastercard = next(b for b in c["brands"] if b["brand"] == "mastercard")
    assert (mastercard["payments_retried"], mastercard["at_visa_limit"]) == (1, 0)


def test_an_advice_code_not_waited_for_is_not_honoured(org, rolled):
    card = make_payment(org, failed="2026-11-03 10:00", card_brand="mastercard")
    start = at("2026-11-03 10:00")
    FailureEvent.objects.create(organization=org, payment=card, source="api", occurred_at=start,
                                network_advice_code="25", min_delay_seconds=24 * 3600, category="insufficient_funds",
                                action="auto_retry", reason="test")
    RecoveryAttempt.objects.create(organization=org, payment=card, sequence=1, kind="auto_retry", channel="psp",
                                   status="failed", scheduled_for=start + timedelta(hours=2), reason="test",
                                   amount=card.amount, currency=card.currency)
    rolled(org)

    c = selectors.compliance(org, Period(date(2026, 11, 1), date(2026, 11, 30), "custom"))

    assert (c["advice_waits"], c["advice_waits_honoured"]) == (1, 0)


def test_the_minute_job_refreshes_every_organization(org, other_org):
    from analytics.tasks import refresh_rollups
    from tinko.scheduler import registered

    make_payment(org, failed="2026-11-03 10:00", amount=1000)
    make_payment(other_org, failed="2026-11-03 10:00", amount=2000, currency="USD")

    refresh_rollups.fn()

    assert DailyRollup.objects.get(organization=org).amount == 1000
    assert DailyRollup.objects.get(organization=other_org).amount == 2000
    assert "refresh_rollups" in {job.name for job in registered()}


def test_a_payment_moved_to_an_earlier_day_leaves_no_trace_after_the_daily_rebuild(org, rolled):
    from analytics.tasks import rebuild_rollups

    payment = make_payment(org, failed="2026-11-10 10:00", amount=1000)
    rolled(org)
    payment.first_failed_at = at("2026-11-05 10:00")  # an older failure reported late
    payment.save()
    refresh(org)
    assert DailyRollup.objects.filter(organization=org).count() == 2  # the old day still counts it

    rebuild_rollups.fn()

    assert list(DailyRollup.objects.filter(organization=org).values_list("day", "amount")) == [(date(2026, 11, 5), 1000)]


def test_refresh_command(org, other_org):
    from io import StringIO

    from django.core.management import CommandError, call_command

    make_payment(org, failed="2026-11-03 10:00")
    out = StringIO()

    call_command("refresh_analytics", org.slug, "--full", stdout=out)
    call_command("refresh_analytics", stdout=out)

    assert f"{org.slug}: rebuilt" in out.getvalue()
    assert f"{other_org.slug}: 0 days re-rolled" in out.getvalue()
    with pytest.raises(CommandError, match="nope"):
        call_command("refresh_analytics", "nope")


def _rollup_rows(org):
    """Every rollup row, and what each payment adds to them (RolledPayment: what a page view subtracts)."""
    from analytics.models import ComplianceRollup, RecoveryTimeRollup, RolledPayment

    def rows(model, exclude=("id",)):
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in exclude]
        return sorted(model.objects.filter(organization=org).values_list(*fields))

    return rows(DailyRollup), rows(RecoveryTimeRollup), rows(ComplianceRollup), rows(RolledPayment)


def test_postgresql_and_python_rollups_are_the_same(org, monkeypatch):
    from analytics import synthetic
    from tinko import bulk

    synthetic.generate(organization=org, payments=1500, days=120, seed=9, holdout_percent=10)
    # What synthetic data lacks: a Mastercard-moved attempt and a limit refusal.
    moved = make_payment(org, failed="2026-11-03 10:00", card_brand="mastercard")
    RecoveryAttempt.objects.create(organization=org, payment=moved, sequence=1, kind="auto_retry", channel="psp",
                                   scheduled_for=at("2026-11-04 10:00"), reason="Retry 1 of 4, moved",
                                   limit_code=NetworkLimit.MASTERCARD_10_24H, amount=moved.amount, currency=moved.currency)
    limited = make_payment(org, failed="2026-11-03 11:00", status="failed")
    limited.limit_code = NetworkLimit.VISA_15_30D
    limited.save()
    # A reason that tells of a limit without the code is not counted: the figures read codes, not sentences.
    worded = make_payment(org, failed="2026-11-03 12:00", status="failed")
    worded.status_reason = "No further action (card-network limit: at most 15 …)."
    worded.save()

    refresh(org, full=True)
    in_sql = _rollup_rows(org)
    monkeypatch.setattr(bulk, "is_postgresql", lambda: False)
    refresh(org, full=True)
    in_python = _rollup_rows(org)

    assert in_sql == in_python
    assert sum(row[-4] for row in in_sql[2]) > 0  # network stops were counted
    assert sum(row[-3] for row in in_sql[2]) == 2  # the two limit refusals
    assert sum(row[-2] for row in in_sql[2]) > 0  # advice codes waited for


def test_postgresql_and_python_re_roll_the_same_days(org, monkeypatch, rolled):
    from tinko import bulk

    for day in ("2026-11-03 10:00", "2026-11-04 10:00", "2026-11-09 10:00"):
        make_payment(org, failed=day, recovered_after=timedelta(hours=3), attempt_sequence=2)
    rolled(org)
    state = RollupState.objects.get(organization=org)
    state.refreshed_through = timezone.now() - timedelta(hours=1)
    state.save()
    monkeypatch.setattr(bulk, "is_postgresql", lambda: False)
    python_days = refresh(org)
    in_python = _rollup_rows(org)
    monkeypatch.undo()
    state.refreshed_through = timezone.now() - timedelta(hours=1)
    state.save()

    assert refresh(org) == python_days == 3
    assert _rollup_rows(org) == in_python


def test_limit_codes_are_backfilled_from_the_planners_earlier_reasons(org):
    from importlib import import_module

    from django.apps import apps

    backfill = import_module("recovery.migrations.0012_backfill_limit_codes_from_reasons").backfill
    refused = make_payment(org, failed="2026-11-03 11:00", status="failed")
    refused.status_reason = (
        "No further action for insufficient funds (card-network limit: at most 15 automatic reattempts per card and "
        "amount in 30 days (Visa rule, applied to every card); 15 already made or scheduled)."
    )
    refused.save()
    moved = make_payment(org, failed="2026-11-03 10:00", card_brand="mastercard")
    attempt = RecoveryAttempt.objects.create(
        organization=org, payment=moved, sequence=1, kind="auto_retry", channel="psp", scheduled_for=at("2026-11-04 10:00"),
        reason="Re-charge 1 of 4: insufficient funds, moved to 2026-11-04 10:00 UTC: Mastercard allows at most 10 "
               "automatic attempts per card in 24 hours", amount=moved.amount, currency=moved.currency)
    untouched = make_payment(org, failed="2026-11-03 12:00")

    backfill(apps, None)

    assert Payment.objects.get(pk=refused.pk).limit_code == NetworkLimit.VISA_15_30D
    assert RecoveryAttempt.objects.get(pk=attempt.pk).limit_code == NetworkLimit.MASTERCARD_10_24H
    assert Payment.objects.get(pk=moved.pk).limit_code == NetworkLimit.MASTERCARD_10_24H
    assert Payment.objects.get(pk=untouched.pk).limit_code == ""
