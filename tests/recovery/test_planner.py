"""The planner as a pure function: policy + classification + history → the next attempt and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from payments.models import Payment, PaymentStatus
from recovery.models import RetryPolicy
from recovery.planner import CardHistory, PaymentHistory, check_network_limits, next_payday, outside_quiet_hours, plan_next

UTC = ZoneInfo("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")
# A Wednesday, 10:00 UTC (15:30 in Kolkata): outside default quiet hours everywhere we test.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@dataclass
class C:
    category: str
    action: str
    network_stop: bool = False
    min_delay: timedelta = timedelta(0)
    reason: str = "Test rule."


INSUFFICIENT = C("insufficient_funds", "auto_retry", reason="Stripe decline code insufficient_funds (rule #1).")
EXPIRED = C("expired_card", "customer_action")
FRAUD = C("fraud_or_stolen", "stop", reason="Stripe decline code lost_card (rule #2).")
MAC03 = C("do_not_retry", "stop", network_stop=True, reason="Mastercard MAC 03: do not try again (rule #3).")


def policy(**overrides) -> RetryPolicy:
    fields = dict(
        name="Default", max_retries=4, initial_delay_seconds=86400, backoff_multiplier=Decimal("2"),
        max_delay_seconds=7 * 86400, recovery_window_days=21, channels=["email"], quiet_hours_start=time(21),
        quiet_hours_end=time(8), payday_alignment=False, payday_days=[1, 15], max_notifications=3,
        notification_interval_seconds=2 * 86400, notify_on_hard_decline=True, category_overrides={},
    )
    fields.update(overrides)
    return RetryPolicy(**fields)


def payment(**overrides) -> Payment:
    fields = dict(
        reference="r1", amount=1000, currency="USD", card_brand="visa", card_last4="4242", status=PaymentStatus.FAILED,
        first_failed_at=NOW, last_failed_at=NOW, recovery_ends_at=NOW + timedelta(days=21), provider="sandbox",
    )
    fields.update(overrides)
    return Payment(**fields)


def plan(*, pay=None, pol=None, c=INSUFFICIENT, history=None, card=None, channels=("email",), recharge=(True, ""),
         tz=UTC, now=NOW, **extra):
    return plan_next(
        payment=pay or payment(), policy=pol or policy(), classification=c, history=history or PaymentHistory(),
        card=card or CardHistory(), channels=list(channels), can_recharge=recharge, tz=tz, now=now, **extra,
    )


def test_first_retry_waits_the_initial_delay_and_says_so():
    result = plan()
    assert result.attempt.kind == "auto_retry"
    assert result.attempt.channel == "psp"
    assert result.attempt.scheduled_for == NOW + timedelta(days=1)
    assert result.attempt.reason.startswith("Retry 1 of 4: insufficient funds, after 1 day")
    assert result.status == PaymentStatus.RECOVERING


def test_backoff_multiplies_and_is_capped_by_max_delay():
    third = plan(history=PaymentHistory(auto_attempts=2))
    assert third.attempt.scheduled_for == NOW + timedelta(days=4)
    assert "retry 3 of 4" in third.attempt.reason.lower()
    capped = plan(pol=policy(max_retries=10, max_delay_seconds=3 * 86400), history=PaymentHistory(auto_attempts=5))
    assert capped.attempt.scheduled_for == NOW + timedelta(days=3)


def test_category_override_changes_the_schedule():
    pol = policy(category_overrides={"insufficient_funds": {"initial_delay_seconds": 3600, "max_retries": 2}})
    result = plan(pol=pol)
    assert result.attempt.scheduled_for == NOW + timedelta(hours=1)
    assert "retry 1 of 2" in result.attempt.reason.lower()


def test_issuer_minimum_delay_wins_over_a_shorter_policy_delay():
    mac25 = C("insufficient_funds", "auto_retry", min_delay=timedelta(days=2), reason="Mastercard MAC 26.")
    result = plan(pol=policy(initial_delay_seconds=3600), c=mac25)
    assert result.attempt.scheduled_for == NOW + timedelta(days=2)
    assert "the issuer asked to wait at least 2 days" in result.attempt.reason


def test_retry_in_quiet_hours_moves_to_their_end_in_the_customers_zone():
    # 16:00 UTC + 1 day = 21:30 in Kolkata: quiet until 08:00 local (02:30 UTC).
    now = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    result = plan(now=now, tz=KOLKATA, pay=payment(first_failed_at=now, recovery_ends_at=now + timedelta(days=21)))
    assert result.attempt.scheduled_for == datetime(2026, 11, 27, 8, 0, tzinfo=KOLKATA)
    assert "outside quiet hours in Asia/Kolkata" in result.attempt.reason


def test_quiet_hours_that_do_not_wrap_midnight():
    pol = policy(quiet_hours_start=time(12), quiet_hours_end=time(14))
    moved, was_moved = outside_quiet_hours(datetime(2026, 11, 25, 13, 0, tzinfo=UTC), pol, UTC)
    assert was_moved and moved == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    same, was_moved = outside_quiet_hours(datetime(2026, 11, 25, 15, 0, tzinfo=UTC), pol, UTC)
    assert not was_moved and same.hour == 15


def test_insufficient_funds_aligns_to_the_next_payday():
    result = plan(pol=policy(payday_alignment=True, payday_days=[1]), tz=KOLKATA)
    assert result.attempt.scheduled_for == datetime(2026, 12, 1, 10, 0, tzinfo=KOLKATA)
    assert "aligned to payday 1st" in result.attempt.reason


def test_payday_alignment_ignores_other_categories():
    declined = C("card_declined", "auto_retry")
    result = plan(pol=policy(payday_alignment=True, payday_days=[1]), c=declined)
    assert result.attempt.scheduled_for == NOW + timedelta(days=1)


def test_payday_31_means_the_last_day_of_a_short_month():
    when = next_payday(datetime(2027, 2, 10, 12, tzinfo=UTC), [31], UTC)
    assert when == datetime(2027, 2, 28, 10, 0, tzinfo=UTC)


def test_retries_used_up_turn_into_a_message():
    result = plan(history=PaymentHistory(auto_attempts=4))
    assert result.attempt.kind == "notification"
    assert result.attempt.channel == "email"
    assert "automatic retries used up (4 of 4)" in result.attempt.reason


def test_customer_action_category_gets_a_message_now():
    result = plan(c=EXPIRED)
    assert result.attempt.kind == "notification"
    assert result.attempt.scheduled_for == NOW
    assert result.attempt.message_kind == "first_notice"
    assert "the customer must act" in result.attempt.reason


def test_authentication_required_uses_its_own_message():
    result = plan(c=C("authentication_required", "customer_action"))
    assert result.attempt.message_kind == "authentication_needed"


def test_reminders_follow_the_interval_and_end_with_a_final_notice():
    last = NOW - timedelta(hours=1)
    second = plan(c=EXPIRED, history=PaymentHistory(notifications=1, last_notification_at=last))
    assert second.attempt.scheduled_for == last + timedelta(days=2)
    assert second.attempt.message_kind == "reminder"
    third = plan(c=EXPIRED, history=PaymentHistory(notifications=2, last_notification_at=last))
    assert third.attempt.message_kind == "final_notice"
    done = plan(c=EXPIRED, history=PaymentHistory(notifications=3, last_notification_at=last))
    assert done.attempt is None
    assert done.status == PaymentStatus.RECOVERING
    assert "All 3 messages sent" in done.reason


def test_fraud_stops_without_a_message():
    result = plan(c=FRAUD)
    assert result.attempt is None
    assert result.status == PaymentStatus.FAILED
    assert "lost_card" in result.reason


def test_mastercard_mac_03_stops_retries_and_the_reason_says_why():
    result = plan(c=MAC03, pol=policy(notify_on_hard_decline=False), pay=payment(card_brand="mastercard"))
    assert result.attempt is None
    assert "MAC 03" in result.reason
    assert "the card network forbids any automatic reattempt" in result.reason


def test_hard_decline_may_send_one_message_asking_for_another_card():
    result = plan(c=MAC03)
    assert result.attempt.kind == "notification"
    assert "the card network forbids any automatic reattempt" in result.attempt.reason
    after = plan(c=MAC03, history=PaymentHistory(notifications=1, last_notification_at=NOW))
    assert after.attempt is None


def test_sixteenth_visa_attempt_for_the_same_card_and_amount_is_never_scheduled():
    made = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 16)]
    result = plan(card=CardHistory(made), pol=policy(max_retries=20))
    assert result.attempt is None or result.attempt.kind != "auto_retry"
    assert "at most 15 automatic reattempts per card and amount in 30 days" in result.reason


def test_fifteenth_attempt_is_allowed_and_other_amounts_do_not_count():
    made = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 15)]
    assert plan(card=CardHistory(made), pol=policy(max_retries=20)).attempt.kind == "auto_retry"
    other_amounts = [(999, "USD", NOW - timedelta(days=1))] * 20 + [(1000, "EUR", NOW)] * 20
    assert plan(card=CardHistory(other_amounts), pol=policy(max_retries=20)).attempt.kind == "auto_retry"


def test_attempts_older_than_thirty_days_do_not_count():
    old = [(1000, "USD", NOW - timedelta(days=31))] * 15
    assert plan(card=CardHistory(old), pol=policy(max_retries=20)).attempt.kind == "auto_retry"


def test_mastercard_ten_per_day_pushes_the_retry_later():
    when = NOW + timedelta(days=1)
    recent = [(500 + i, "USD", when - timedelta(hours=i + 1)) for i in range(10)]
    allowed, note = check_network_limits(
        card_brand="mastercard", card=CardHistory(recent), amount=1000, currency="USD", when=when
    )
    # The oldest of the last ten was 10 h before; room again 24 h after it.
    assert allowed == when - timedelta(hours=10) + timedelta(hours=24)
    assert "Mastercard allows at most 10" in note
    visa_allowed, _ = check_network_limits(card_brand="visa", card=CardHistory(recent), amount=1000, currency="USD", when=when)
    assert visa_allowed == when


def test_no_recharge_provider_falls_back_to_a_message_and_explains():
    result = plan(recharge=(False, "Automatic re-charges through Stripe need a connected Stripe account."))
    assert result.attempt.kind == "notification"
    assert "automatic re-charges through stripe need a connected stripe account" in result.attempt.reason.lower()


def test_no_reachable_channel_stops_and_says_so():
    result = plan(c=EXPIRED, channels=())
    assert result.attempt is None
    assert "No way to reach the customer" in result.reason


def test_window_end_exhausts_the_recovery():
    pay = payment(recovery_ends_at=NOW - timedelta(seconds=1))
    result = plan(pay=pay)
    assert result.attempt is None
    assert result.status == PaymentStatus.EXHAUSTED
    assert "recovery window has ended" in result.reason


def test_retry_beyond_the_window_is_not_planned():
    pay = payment(recovery_ends_at=NOW + timedelta(hours=2))
    result = plan(pay=pay, channels=())
    assert result.attempt is None
    assert "would fall after the recovery window ends" in result.reason


@pytest.mark.parametrize("status", [PaymentStatus.RECOVERED, PaymentStatus.CANCELLED])
def test_finished_payments_get_no_plan(status):
    result = plan(pay=payment(status=status))
    assert result.attempt is None
    assert result.status == status
