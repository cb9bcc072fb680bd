"""The sample data command: a plausible history that nothing will act on, on both write paths."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from analytics import selectors, synthetic
from recovery.models import FailureEvent, Payment, RecoveryAttempt
from tinko import bulk

pytestmark = pytest.mark.django_db


def history(org):
    payments = Payment.objects.filter(organization=org)
    return (
        sorted(payments.values_list("reference", "status", "amount", "currency", "category", "recovered_channel",
                                    "holdout_group", "recovered_attempt__sequence")),
        sorted(RecoveryAttempt.objects.filter(organization=org).values_list("payment__reference", "sequence", "kind", "status")),
        FailureEvent.objects.filter(organization=org).count(),
    )


@pytest.fixture
def other_org(other_org, org):
    other_org.default_currency = org.default_currency
    other_org.save()
    return other_org


def test_copy_and_orm_paths_write_the_same_history(org, other_org, monkeypatch):
    from datetime import datetime, timezone

    end = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    synthetic.generate(organization=org, payments=300, days=60, seed=3, holdout_percent=10, end=end)
    with monkeypatch.context() as m:
        m.setattr(bulk, "is_postgresql", lambda: False)
        synthetic.generate(organization=other_org, payments=300, days=60, seed=3, holdout_percent=10, end=end)

    assert history(org) == history(other_org)


def test_sample_history_is_plausible_and_inert(org):
    counts = synthetic.generate(organization=org, payments=500, days=90, seed=5, holdout_percent=10)

    payments = Payment.objects.filter(organization=org)
    assert counts["payments"] == payments.count() == 500
    assert counts["attempts"] == RecoveryAttempt.objects.filter(organization=org).count() > 500
    # Nothing the scheduler could pick up or a worker could run.
    assert not RecoveryAttempt.objects.filter(organization=org, status__in=RecoveryAttempt.ACTIVE).exists()
    assert all(ref.startswith("sample-") for ref in payments.values_list("reference", flat=True))
    recovered = payments.filter(status="recovered")
    assert 0.3 < recovered.count() / 500 < 0.6
    # Attribution: a recovery by Tinko points at a succeeded attempt of its own payment on that channel.
    for p in recovered.exclude(recovered_channel="").select_related("recovered_attempt")[:50]:
        assert p.recovered_attempt.payment_id == p.pk
        assert p.recovered_attempt.status == "succeeded"
        assert p.recovered_attempt.channel == p.recovered_channel
        assert p.recovered_at >= p.first_failed_at
    assert not RecoveryAttempt.objects.filter(organization=org, payment__holdout_group="holdout").exists()
    assert set(payments.values_list("currency", flat=True)) >= {"EUR"}
    assert payments.values("category").distinct().count() >= 6


def test_command_adds_on_top_and_updates_the_figures(org, settings):
    settings.DEBUG = True
    out = StringIO()

    call_command("generate_sample_data", org.slug, "--payments", "50", stdout=out)
    call_command("generate_sample_data", org.slug, "--payments", "20", stdout=out)

    assert Payment.objects.filter(organization=org).count() == 70
    assert "50 payments" in out.getvalue()
    today = selectors.today_for(org)
    period = selectors.Period(today - timedelta(days=91), today, "custom")
    assert sum(m["failed_count"] for m in selectors.summary(org, period)) + selectors.holdout(org, period)["holdout_count"] == 70


@pytest.mark.parametrize("args, message", [
    (["nope"], "No organization"),
    (["acme", "--payments", "0"], "--payments"),
    (["acme", "--days", "0"], "--days"),
    (["acme", "--holdout-percent", "60"], "--holdout-percent"),
])
def test_command_refuses_bad_arguments(org, settings, args, message):
    settings.DEBUG = True

    with pytest.raises(CommandError, match=message):
        call_command("generate_sample_data", *args)
    assert not Payment.objects.exists()


def test_command_refuses_production_without_force(org, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="local mode"):
        call_command("generate_sample_data", org.slug)
