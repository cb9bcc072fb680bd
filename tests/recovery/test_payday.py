"""Payday and time-of-day inference from a customer's own history (recovery/payday.py), and how the planner uses it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from recovery.payday import (
    NO_TIMING,
    CustomerTiming,
    infer_paydays,
    infer_timing,
    message_time,
    ordinal,
    preferred_hour,
)
from tests.recovery.test_planner import INSUFFICIENT, NOW, payment, plan, policy

UTC = ZoneInfo("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")


def at(month, day, hour=12, year=2026, tz=UTC):
    return datetime(year, month, day, hour, tzinfo=tz)


def test_payments_around_the_same_day_of_the_month_give_that_payday():
    paid = [at(6, 25), at(7, 26), at(8, 25), at(9, 27), at(10, 25)]
    days, weekday, basis = infer_paydays(paid, UTC)
    assert days == (25,)
    assert weekday is None
    assert basis == "5 of 5 past payments went through between the 25th and the 27th"


def test_twice_a_month_pay_gives_two_paydays():
    paid = [at(6, 1), at(6, 15), at(7, 2), at(7, 16), at(8, 1), at(8, 15)]
    days, weekday, basis = infer_paydays(paid, UTC)
    assert days == (1, 15)
    assert basis == (
        "6 of 6 past payments went through between the 1st and the 3rd or between the 15th and the 17th"
    )


def test_one_payment_is_not_a_pattern():
    assert infer_paydays([at(6, 25)], UTC) == ((), None, "")


def test_scattered_payments_leave_the_policy_paydays_in_force():
    paid = [at(6, 3), at(7, 11), at(8, 19), at(9, 27)]
    assert infer_paydays(paid, UTC) == ((), None, "")


def test_the_last_days_of_short_and_long_months_are_one_month_end_payday():
    # 28 February, 31 March, 30 April: all the month's last day.
    paid = [at(2, 28), at(3, 31), at(4, 30)]
    days, _, basis = infer_paydays(paid, UTC)
    assert days == (31,)
    assert basis == "3 of 3 past payments went through on the month's last day"


def test_payments_on_the_same_weekday_give_a_weekly_payday():
    # Fridays spread over the month: no day-of-month cluster.
    paid = [at(6, 5), at(6, 19), at(7, 10), at(7, 31), at(8, 14)]
    days, weekday, basis = infer_paydays(paid, UTC)
    assert days == ()
    assert weekday == 4
    assert basis == "5 of 5 past payments went through on a Friday"


def test_local_day_decides_not_utc():
    # 20:00 UTC on the 24th is the 25th in Kolkata.
    paid = [at(6, 24, 20), at(7, 24, 20), at(8, 24, 20)]
    assert infer_paydays(paid, KOLKATA)[0] == (25,)
    assert infer_paydays(paid, UTC)[0] == (24,)


def test_preferred_hour_needs_half_the_events_within_an_hour():
    assert preferred_hour([at(6, 1, 19), at(7, 3, 20), at(8, 2, 19), at(8, 9, 7)], UTC)[0] == 19
    assert preferred_hour([at(6, 1, 3), at(7, 3, 9), at(8, 2, 15), at(8, 9, 21)], UTC) == (None, "")
    # 19, 20 and 21 are each within an hour of three of these times; 20 is the one most of them fell in.
    assert preferred_hour([at(6, 1, 20), at(7, 3, 20), at(8, 2, 20)], UTC)[0] == 20


def test_no_history_is_no_timing():
    assert infer_timing(paid=[], opened=[], tz=UTC) is NO_TIMING


def test_message_waits_for_the_customers_hour_within_the_day():
    timing = CustomerTiming(hour=19, hour_basis="2 of 2 times")
    when, note = message_time(NOW, timing=timing, tz=UTC)  # NOW is 10:00 UTC
    assert when == NOW.replace(hour=19)
    assert note == "held until 19:00 (2 of 2 times)"
    # Already in the customer's hour: no wait.
    assert message_time(NOW.replace(hour=19, minute=30), timing=timing, tz=UTC)[0] == NOW.replace(hour=19, minute=30)


def test_message_does_not_wait_most_of_a_day():
    timing = CustomerTiming(hour=8, hour_basis="x")
    # 10:00 → 08:00 next day is 22 hours: more than the 20 a message may wait.
    assert message_time(NOW, timing=timing, tz=UTC) == (NOW, "")


def test_planner_aligns_insufficient_funds_to_the_customers_own_payday_and_says_why():
    timing = infer_timing(paid=[at(8, 27), at(9, 27), at(10, 28)], opened=[], tz=UTC)
    result = plan(pol=policy(payday_alignment=True, payday_days=[1, 15]), timing=timing)
    # NOW is 25 November; the policy would say 1 December, the customer's history says the 27th.
    assert result.attempt.scheduled_for == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert "aligned to this customer's payday, the 27th (3 of 3 past payments went through between the 27th" in (
        result.attempt.reason
    )


def test_planner_falls_back_to_the_policy_paydays_without_history():
    result = plan(pol=policy(payday_alignment=True, payday_days=[1]), timing=NO_TIMING)
    assert result.attempt.scheduled_for == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert "aligned to payday 1st" in result.attempt.reason


def test_planner_uses_a_weekly_payday():
    timing = CustomerTiming(weekday=4, payday_basis="4 of 4 past payments went through on a Friday")
    result = plan(pol=policy(payday_alignment=True), timing=timing)
    # Retry after 1 day is Thursday 26 November; the next Friday is the 27th.
    assert result.attempt.scheduled_for == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert "this customer's payday, a Friday" in result.attempt.reason


def test_planner_holds_a_message_for_the_customers_hour_but_never_into_quiet_hours():
    expired = type(INSUFFICIENT)("expired_card", "customer_action")
    timing = CustomerTiming(hour=23, hour_basis="3 of 3 times")
    # 23:00 is inside the 21:00–08:00 quiet hours: the message waits for 08:00 instead.
    result = plan(c=expired, timing=timing, pay=payment())
    assert result.attempt.kind == "notification"
    assert result.attempt.scheduled_for == datetime(2026, 11, 26, 8, tzinfo=UTC)
    assert "held until 23:00" in result.attempt.reason
    assert "outside quiet hours" in result.attempt.reason
    early = plan(c=expired, timing=CustomerTiming(hour=18, hour_basis="3 of 3 times"))
    assert early.attempt.scheduled_for == NOW.replace(hour=18)
    assert "held until 18:00 (3 of 3 times)" in early.attempt.reason


def test_planner_reason_is_unchanged_when_history_teaches_nothing():
    assert plan(timing=NO_TIMING).attempt.reason == plan().attempt.reason
    assert NOW + timedelta(days=1) == plan(timing=NO_TIMING).attempt.scheduled_for


# --- Through ingestion: the customer's history in the database ----------------------------------------------

import pytest  # noqa: E402
from django.utils import timezone  # noqa: E402

from recovery.models import Payment, RetryPolicy
from tests.recovery.conftest import report  # noqa: E402


def _days_ahead(now, *offsets):
    """Days of the month a few days from ``now``, moved past month ends so that every month has them."""
    shift = 0
    while any((now + timedelta(days=o + shift)).day > 28 for o in offsets):
        shift += 1
    return [(now + timedelta(days=o + shift)) for o in offsets]


@pytest.mark.django_db
def test_ingestion_plans_from_the_customers_own_recoveries_not_another_customers(api, org, default_rules):
    now = timezone.now()
    ada_day, policy_day = _days_ahead(now, 3, 6)
    RetryPolicy.objects.filter(organization=org).update(payday_alignment=True, payday_days=[policy_day.day])
    # Ada paid three earlier failed payments on the same day of the month; Bob has no history.
    for months_ago in (1, 2, 3):
        response = api.post("events/payment_failed", report())
        assert response.status_code == 201
        paid = (now - timedelta(days=31 * months_ago)).replace(day=ada_day.day, hour=12)
        Payment.objects.filter(reference=response.json()["payment"]["reference"]).update(
            status="recovered", recovered_at=paid
        )
    assert api.post("events/payment_failed", report(reference="ada-new")).status_code == 201
    bob = report(reference="bob-new", customer={"id": "cus_bob", "email": "bob@example.com", "timezone": "UTC"})
    assert api.post("events/payment_failed", bob).status_code == 201

    ada_attempt = Payment.objects.get(reference="ada-new").attempts.get()
    bob_attempt = Payment.objects.get(reference="bob-new").attempts.get()
    assert ada_attempt.scheduled_for.astimezone(UTC).date() == ada_day.date()
    assert f"this customer's payday, the {ordinal(ada_day.day)} (3 of 3 past payments went through" in ada_attempt.reason
    assert bob_attempt.scheduled_for.astimezone(UTC).date() == policy_day.date()
    assert f"aligned to payday {ordinal(policy_day.day)}" in bob_attempt.reason
