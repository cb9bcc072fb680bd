"""The policy simulator: a hand-computed small population, and the same decisions as the engine through the database."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import django.utils.timezone
import pytest

from notifications.models import Notification
from payments.sandbox.cards import card_for
from recovery import dispatch, runner
from recovery.ingestion import record_failures
from recovery.models import AttemptStatus, Payment, RecoveryAttempt, RetryPolicy
from recovery.reports import FailureReport
from recovery.simulator.engine import BASELINES, TinkoStrategy
from recovery.simulator.population import MAX_DRAWS, Failure, PopulationModel, generate
from recovery.simulator.results import run

pytestmark = pytest.mark.django_db

UTC = ZoneInfo("UTC")
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon


def failure(index, kind, family, codes, amount, *, brand="visa", funded=(), blocked=True, message_draw=0.99,
            delay=5.0, email=True):
    return Failure(
        index=index, kind=kind, family=family, codes=codes, amount=amount, currency="USD", brand=brand,
        failed_at=START, tz=UTC, email=email, phone=False, active_hour=3, schedule="monthly", funded=list(funded),
        blocked=blocked, retry_draws=[0.99] * MAX_DRAWS, message_draws=[message_draw] * MAX_DRAWS,
        delay_draws=[delay] * MAX_DRAWS, paid_history=[],
    )


DAY = 86400


def hand_policy():
    # Re-charges 1, 2, 4 and 7 days after the last step for short funds; messages for an expired card (at once, then
    # two days apart); one message for a do-not-retry decline; no quiet hours, no payday alignment.
    recharge = [{"action": "recharge", "after_seconds": d * DAY} for d in (1, 2, 4, 7)]
    return RetryPolicy(
        name="Hand", recovery_window_days=21, channels=["email"], quiet_hours_start=None, quiet_hours_end=None,
        payday_alignment=False,
        steps={
            "insufficient_funds": recharge,
            "expired_card": [{"action": "message", "after_seconds": d * DAY, "channel": ""} for d in (0, 2, 2)],
            "do_not_retry": [{"action": "message", "after_seconds": 0, "channel": ""}],
        },
    )


def test_counters_match_the_hand_computed_case(default_rules):
    population = [
        # Money arrives on day 3 at 06:00 and lasts three days: retry 1 (day 1) fails, retry 2 (day 1 + 2 = day 3,
        # 12:00) goes through. Tinko: 2 charges, recovered after 3 days. Daily: days 1, 2 fail, day 3 succeeds.
        failure(0, "insufficient_funds", "insufficient_funds",
                {"code": "card_declined", "decline_code": "insufficient_funds"}, 1000, blocked=False,
                funded=[(START + timedelta(days=2, hours=18), START + timedelta(days=6))]),
        # Expired card: the first message (sent at once) makes the customer pay 5 hours later.
        failure(1, "expired", "expired_card", {"code": "expired_card", "decline_code": "expired_card"}, 2000,
                message_draw=0.1),
        # Suspected fraud: Tinko neither charges nor writes.
        failure(2, "fraud", "fraud", {"code": "card_declined", "decline_code": "fraudulent"}, 3000),
        # Mastercard MAC 03: never re-charge; one message (hard decline), which the customer ignores.
        failure(3, "mac_stop", "do_not_retry",
                {"code": "card_declined", "decline_code": "do_not_honor", "network_advice_code": "03"}, 4000,
                brand="mastercard"),
    ]
    daily = [b for b in BASELINES if b.name == "Daily for 14 days"][0]
    tinko, baseline = run(strategies=[TinkoStrategy("Hand", hand_policy()), daily], model=PopulationModel(),
                          failures=population)

    assert tinko["failures"] == 4
    assert tinko["value_recovered_pct"] == 30.0  # (1000 + 2000) / 10000
    assert tinko["payments_recovered_pct"] == 50.0
    assert tinko["charges"] == 2 and tinko["charges_per_recovered"] == 1.0
    assert tinko["messages"] == 2 and tinko["messages_per_payment"] == 0.5
    assert tinko["median_days_to_recover"] == round((3 + 5 / 24) / 2, 1)  # 3 days and 5 hours
    assert tinko["network_violations"] == 0
    assert tinko["messages_to_fraud"] == 0
    assert tinko["per_category"]["insufficient_funds"] == {"failures": 1, "payments_recovered_pct": 100.0,
                                                          "value_recovered_pct": 100.0}
    assert tinko["per_category"]["fraud"]["payments_recovered_pct"] == 0.0

    # Daily for 14 days: 3 charges for the first, 14 for each of the others; every charge after MAC 03 breaks the rule.
    assert baseline["charges"] == 3 + 14 + 14 + 14
    assert baseline["value_recovered_pct"] == 10.0
    assert baseline["charges_per_recovered"] == 45.0
    assert baseline["network_violations"] == 14
    assert baseline["messages"] == 0
    assert baseline["median_days_to_recover"] == 3.0


def test_same_seed_same_population_other_seed_other_population():
    model = PopulationModel()
    first, again, other = generate(model, size=50, seed=7), generate(model, size=50, seed=7), generate(model, size=50, seed=8)
    assert [(f.kind, f.amount, f.failed_at) for f in first] == [(f.kind, f.amount, f.failed_at) for f in again]
    assert [(f.kind, f.amount, f.failed_at) for f in first] != [(f.kind, f.amount, f.failed_at) for f in other]


def test_unknown_model_parameter_is_refused():
    with pytest.raises(ValueError, match="unknown population parameter"):
        PopulationModel.from_dict({"paycheck_cover": 0.5})
    with pytest.raises(ValueError, match="unknown decline mix"):
        PopulationModel.from_dict({"mix": "everything"})


# --- The simulator and the engine through the database make the same decisions ------------------------------

# Sandbox test cards (payments/sandbox/README.md): what every re-charge on them answers.
CARDS = ["9995", "9996", "0002", "0069", "9987", "0303", "0119", "2525", "1001", "3155", "4242", "0341"]
ZONES = ["UTC", "Asia/Kolkata", "America/New_York"]
DB_START = datetime(2027, 3, 1, 19, 30, tzinfo=UTC)  # in the future: rows the engine stamps with the real clock are older
HISTORY = {
    0: [datetime(2026, 12, 10, 12, tzinfo=UTC), datetime(2027, 1, 11, 12, 20, tzinfo=UTC),
        datetime(2027, 2, 10, 11, 40, tzinfo=UTC)],
    3: [datetime(2026, 12, 5, 20, tzinfo=UTC), datetime(2027, 1, 5, 20, 15, tzinfo=UTC),
        datetime(2027, 2, 6, 20, 40, tzinfo=UTC)],
}


def sandbox_issuer(model, failure, *, when, retry, last_attempt):
    card = card_for(failure.last4)
    return card.succeeds or (card.recovers and retry >= 1)


def nobody_pays(model, failure, *, when, nth):
    return None


def card_codes(last4):
    card = card_for(last4)
    names = ("code", "decline_code", "advice_code", "network_advice_code", "network_decline_code", "message")
    return {name: getattr(card, name) for name in names if getattr(card, name)}


def test_simulator_and_database_engine_make_the_same_decisions(org, default_rules, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    # Payday alignment on, so that a customer's own payday (learnt from earlier recoveries) and the policy's list
    # both decide re-charges somewhere in the population.
    # A second message an hour after the first for expired cards, which the 24-hour cap holds back.
    policy = RetryPolicy.objects.get(organization=org, is_default=True)
    steps = {**policy.steps, "expired_card": [
        {"action": "message", "after_seconds": s, "channel": ""} for s in (0, 3600, 2 * DAY)
    ]}
    RetryPolicy.objects.filter(pk=policy.pk).update(payday_alignment=True, payday_days=[1, 15], steps=steps)
    policy.refresh_from_db()
    clock = [DB_START]
    monkeypatch.setattr(django.utils.timezone, "now", lambda: clock[0])

    # Earlier recoveries of two customers: their payday (the 10th; the 5th) and the hour they paid (12:00; 20:00).
    clock[0] = DB_START - timedelta(days=120)
    for i, paid in HISTORY.items():
        for k, when in enumerate(paid):
            card = card_for(CARDS[i])
            (result,) = record_failures(organization=org, reports=[FailureReport(
                reference=f"hist-{i}-{k}", amount=500, currency="EUR", provider="sandbox", occurred_at=when,
                event_id=f"evt-hist-{i}-{k}", **card_codes(CARDS[i]),
                customer={"id": f"cus-eq-{i}", "email": f"c{i}@example.com", "timezone": ZONES[i % len(ZONES)]},
                payment_method={"brand": card.brand, "last4": CARDS[i], "exp_month": 12, "exp_year": 2030},
            )])
            RecoveryAttempt.objects.filter(payment=result.payment).update(status=AttemptStatus.CANCELLED)
            Payment.objects.filter(pk=result.payment.pk).update(status="recovered", recovered_at=when)

    # 1. The engine through the database: ingestion, scheduler claims and the runner, on a simulated clock.
    clock[0] = DB_START
    reports = []
    for i, last4 in enumerate(CARDS):
        card = card_for(last4)
        reports.append(FailureReport(
            reference=f"eq-{i}", amount=1000 + i, currency="EUR", provider="sandbox", occurred_at=DB_START,
            event_id=f"evt-eq-{i}", **card_codes(last4),
            customer={"id": f"cus-eq-{i}", "email": f"c{i}@example.com", "timezone": ZONES[i % len(ZONES)]},
            payment_method={"brand": card.brand, "last4": last4, "exp_month": 12, "exp_year": 2030},
        ))
    record_failures(organization=org, reports=reports)
    for _ in range(400):
        due = RecoveryAttempt.objects.filter(organization=org, status=AttemptStatus.SCHEDULED).order_by("scheduled_for").first()
        if due is None:
            break
        clock[0] = due.scheduled_for
        with django_capture_on_commit_callbacks(execute=False):
            dispatch.claim_due_attempts(now=clock[0])
        queued = list(RecoveryAttempt.objects.filter(organization=org, status=AttemptStatus.QUEUED).values_list("pk", flat=True))
        runner.run_notification_attempts(queued)
    else:
        pytest.fail("the engine did not settle")

    # 2. The simulator, in memory, on the same failures with the same issuer answers.
    strategy = TinkoStrategy("Default", policy, organization=org, channels=("email",))
    model = PopulationModel()
    decided = {}
    for i, last4 in enumerate(CARDS):
        card = card_for(last4)
        sim_failure = Failure(
            index=i, kind="", family="", codes=card_codes(last4), amount=1000 + i, currency="EUR",
            brand=card.brand, failed_at=DB_START, tz=ZoneInfo(ZONES[i % len(ZONES)]), email=True, phone=False,
            active_hour=3, schedule="monthly", funded=[], blocked=True, retry_draws=[1.0] * MAX_DRAWS,
            message_draws=[1.0] * MAX_DRAWS, delay_draws=[1.0] * MAX_DRAWS, paid_history=HISTORY.get(i, []),
        )
        outcome = strategy.run(model, _with_card(sim_failure, last4), issuer=sandbox_issuer, customer=nobody_pays)
        decided[f"eq-{i}"] = outcome

    # 3. Attempt by attempt, the same.
    compared = 0
    for payment in Payment.objects.filter(organization=org, reference__startswith="eq-").order_by("reference"):
        db_steps = [
            (a.kind, a.channel, a.scheduled_for, _result(a))
            for a in payment.attempts.exclude(status=AttemptStatus.CANCELLED).order_by("sequence")
        ]
        sim_steps = [(s.kind, s.channel, s.when, s.result) for s in decided[payment.reference].steps]
        assert sim_steps == db_steps, payment.reference
        if payment.reference in ("eq-0", "eq-3"):
            reasons = " ".join(payment.attempts.values_list("reason", flat=True))
            assert "this customer" in reasons, reasons
        assert (payment.status == "recovered") == (decided[payment.reference].recovered_at is not None)
        compared += len(db_steps)
    assert compared >= 30  # the population exercises retries, declines, recoveries, messages and quiet hours
    # The respect rules held messages back (one per customer in 24 hours) in both.
    assert Notification.objects.filter(organization=org, status="suppressed", reason="frequency_cap").exists()


def _with_card(sim_failure: Failure, last4: str) -> Failure:
    # The sandbox issuer reads the card's last four digits; the classifier must not see them.
    sim_failure.last4 = last4
    return sim_failure


def _result(attempt) -> str:
    if attempt.kind == "notification":
        return "sent" if attempt.status == AttemptStatus.SUCCEEDED else attempt.status
    return {"succeeded": "succeeded", "failed": "failed"}.get(attempt.status, attempt.status)
