"""The planner as a pure function: policy steps + classification + history → the next attempt and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from recovery.models import NetworkLimit, Payment, PaymentStatus, RetryPolicy
from recovery.payday import CustomerTiming
from recovery.planner import (
    CardHistory,
    PaymentHistory,
    check_network_limits,
    next_payday,
    outside_quiet_hours,
    plan_card_changed,
    plan_next,
    plan_retry_now,
    step_key,
)
from recovery.steps import DEFAULT_STEPS, default_steps, from_legacy, validate_steps

UTC = ZoneInfo("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")
# A Wednesday, 10:00 UTC (15:30 in Kolkata): outside default quiet hours everywhere we test.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class C:
    category: str
    action: str
    network_stop: bool = False
    min_delay: timedelta = timedelta(0)
    reason: str = "Test rule."
    decline_code: str = ""
    network_decline_code: str = ""


INSUFFICIENT = C("insufficient_funds", "auto_retry", reason="Stripe decline code insufficient_funds (rule #1).")
DECLINED = C("card_declined", "auto_retry", reason="Stripe decline code do_not_honor.")
EXPIRED = C("expired_card", "customer_action")
FRAUD = C("fraud_or_stolen", "stop", reason="Stripe decline code fraudulent (rule #2).", decline_code="fraudulent")
LOST = C("fraud_or_stolen", "stop", reason="Stripe decline code lost_card (rule #4).", decline_code="lost_card")
MAC03 = C("do_not_retry", "stop", network_stop=True, reason="Mastercard MAC 03: do not try again (rule #3).")


def r(hours):
    return {"action": "recharge", "after_seconds": int(hours * 3600)}


def m(hours, channel=""):
    return {"action": "message", "after_seconds": int(hours * 3600), "channel": channel}


def policy(**overrides) -> RetryPolicy:
    fields = dict(
        name="Default", steps=default_steps(), recovery_window_days=21, channels=["email"],
        quiet_hours_start=time(21), quiet_hours_end=time(8), payday_alignment=False, payday_days=[1, 15],
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


# --- Steps: order, waits, messages alongside re-charges ---------------------------------------------------


def test_first_step_of_the_default_insufficient_funds_policy_is_a_recharge_a_day_later():
    result = plan()
    assert result.attempt.kind == "auto_retry"
    assert result.attempt.channel == "psp"
    assert result.attempt.scheduled_for == NOW + DAY
    assert result.attempt.reason.startswith("Re-charge 1 of 7: insufficient funds, 1 day after the failure")
    assert result.status == PaymentStatus.RECOVERING


def test_after_the_first_recharge_declines_a_message_goes_out_alongside_the_recharges():
    declined_at = NOW
    result = plan(pay=payment(last_failed_at=declined_at),
                  history=PaymentHistory(auto_attempts=1, last_step_at=declined_at - timedelta(minutes=1)))
    assert result.attempt.kind == "notification"
    assert result.attempt.scheduled_for == NOW
    assert result.attempt.message_kind == "first_notice"
    assert "Message 1 of 3 by Email: insufficient funds" in result.attempt.reason
    assert "alongside the automatic re-charges" in result.attempt.reason


def test_generic_declines_get_a_message_at_failure_then_a_recharge():
    first = plan(c=DECLINED)
    assert first.attempt.kind == "notification" and first.attempt.scheduled_for == NOW
    second = plan(c=DECLINED, history=PaymentHistory(notifications=1, last_step_at=NOW))
    assert second.attempt.kind == "auto_retry"
    assert second.attempt.scheduled_for == NOW + DAY
    assert "1 day after the last step" in second.attempt.reason


def test_a_policy_of_steps_is_followed_in_order_with_waits_after_the_last_step():
    pol = policy(steps={"insufficient_funds": [m(0), r(6), m(24, "sms"), r(48)]}, channels=["email", "sms"])
    history = PaymentHistory(auto_attempts=1, notifications=1, last_step_at=NOW - timedelta(hours=2))
    result = plan(pol=pol, history=history, pay=payment(last_failed_at=NOW - timedelta(hours=2)),
                  channels=("email", "sms"))
    assert result.attempt.kind == "notification"
    assert result.attempt.channel == "sms"
    assert result.attempt.scheduled_for == NOW - timedelta(hours=2) + DAY
    assert result.attempt.message_kind == "final_notice"


def test_a_later_decline_restarts_the_wait_from_the_decline():
    pol = policy(steps={"insufficient_funds": [r(24), r(48)]})
    declined = NOW - timedelta(hours=1)
    result = plan(pol=pol, pay=payment(last_failed_at=declined),
                  history=PaymentHistory(auto_attempts=1, last_step_at=NOW - timedelta(hours=3)))
    assert result.attempt.scheduled_for == declined + timedelta(hours=48)


def test_a_changed_category_continues_where_its_list_has_work_left():
    pol = policy(steps={"insufficient_funds": [r(24), r(24)], "card_declined": [r(24), m(0), r(24)]})
    result = plan(pol=pol, c=DECLINED, history=PaymentHistory(auto_attempts=2, last_step_at=NOW))
    assert result.attempt.kind == "notification"
    after = plan(pol=pol, c=DECLINED, history=PaymentHistory(auto_attempts=2, notifications=1, last_step_at=NOW))
    assert after.attempt is None


def test_a_named_channel_that_cannot_reach_the_customer_falls_back_and_says_so():
    pol = policy(steps={"expired_card": [m(0, "whatsapp")]}, channels=["whatsapp", "email"])
    result = plan(pol=pol, c=EXPIRED, channels=("email",))
    assert result.attempt.channel == "email"
    assert "WhatsApp cannot reach the customer" in result.attempt.reason


def test_messages_take_the_policys_channels_in_turn():
    pol = policy(steps={"expired_card": [m(0), m(24), m(24)]}, channels=["email", "sms"])
    second = plan(pol=pol, c=EXPIRED, channels=("email", "sms"), history=PaymentHistory(notifications=1, last_step_at=NOW))
    assert second.attempt.channel == "sms"
    assert second.attempt.message_kind == "reminder"


def test_every_step_done_leaves_the_link_open_and_says_so():
    pol = policy(steps={"expired_card": [m(0), m(24)]})
    done = plan(pol=pol, c=EXPIRED, history=PaymentHistory(notifications=2, last_step_at=NOW))
    assert done.attempt is None
    assert done.status == PaymentStatus.RECOVERING
    assert "Every step of the policy for expired card is done" in done.reason


def test_recharges_only_policy_ends_exhausted_when_used_up():
    pol = policy(steps={"insufficient_funds": [r(24)]})
    done = plan(pol=pol, history=PaymentHistory(auto_attempts=1, last_step_at=NOW))
    assert done.attempt is None
    assert done.status == PaymentStatus.EXHAUSTED


def test_a_category_without_steps_gets_nothing_and_the_reason_says_so():
    result = plan(c=C("unknown", "stop", reason="Needs manual review."))
    assert result.attempt is None
    assert result.status == PaymentStatus.FAILED
    assert "the policy has no steps for unknown" in result.reason


def test_customer_action_category_gets_a_message_now():
    result = plan(c=EXPIRED)
    assert result.attempt.kind == "notification"
    assert result.attempt.scheduled_for == NOW
    assert result.attempt.message_kind == "first_notice"
    assert "the customer must act" in result.attempt.reason


def test_authentication_required_uses_its_own_message():
    result = plan(c=C("authentication_required", "customer_action"))
    assert result.attempt.message_kind == "authentication_needed"


def test_issuer_minimum_delay_wins_over_a_shorter_step_wait():
    mac26 = C("insufficient_funds", "auto_retry", min_delay=timedelta(days=2), reason="Mastercard MAC 26.")
    result = plan(pol=policy(steps={"insufficient_funds": [r(1)]}), c=mac26)
    assert result.attempt.scheduled_for == NOW + timedelta(days=2)
    assert "the issuer asked to wait at least 2 days" in result.attempt.reason


def test_retry_in_quiet_hours_moves_to_their_end_in_the_customers_zone():
    # 16:00 UTC + 1 day = 21:30 in Kolkata: quiet until 08:00 local (02:30 UTC).
    now = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    result = plan(now=now, tz=KOLKATA,
                  pay=payment(first_failed_at=now, last_failed_at=now, recovery_ends_at=now + timedelta(days=21)))
    assert result.attempt.scheduled_for == datetime(2026, 11, 27, 8, 0, tzinfo=KOLKATA)
    assert "outside quiet hours in Asia/Kolkata" in result.attempt.reason


def test_message_in_quiet_hours_moves_to_their_end():
    now = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
    result = plan(c=EXPIRED, now=now, pay=payment(last_failed_at=now, recovery_ends_at=now + timedelta(days=21)))
    assert result.attempt.scheduled_for == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert "outside quiet hours in UTC" in result.attempt.reason


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
    pol = policy(payday_alignment=True, payday_days=[1], steps={"card_declined": [r(24)]})
    result = plan(pol=pol, c=DECLINED)
    assert result.attempt.scheduled_for == NOW + DAY


def test_payday_31_means_the_last_day_of_a_short_month():
    when = next_payday(datetime(2027, 2, 10, 12, tzinfo=UTC), [31], UTC)
    assert when == datetime(2027, 2, 28, 10, 0, tzinfo=UTC)


# --- Network stops, lost and stolen cards, fraud ----------------------------------------------------------


def test_fraud_gets_nothing_whatever_the_policy_says():
    pol = policy(steps={"fraud_or_stolen": [m(0)], "lost_or_stolen": [m(0)]})
    result = plan(c=FRAUD, pol=pol)
    assert result.attempt is None
    assert result.status == PaymentStatus.FAILED
    assert "fraudulent" in result.reason
    assert "suspected fraud never gets a re-charge or a message" in result.reason


def test_a_lost_card_gets_a_use_another_card_message_never_a_recharge():
    result = plan(c=LOST)
    assert result.attempt.kind == "notification"
    assert "lost, stolen or picked-up card" in result.attempt.reason
    assert "asking for another card" in result.attempt.reason
    # Even a policy that (bypassing validation) asks for a re-charge gets a message only.
    forced = plan(c=LOST, pol=policy(steps={"lost_or_stolen": [r(1), m(0)]}))
    assert forced.attempt.kind == "notification"
    assert "not re-charged" in forced.attempt.reason


@pytest.mark.parametrize(("decline_code", "visa", "key"), [
    ("lost_card", "", "lost_or_stolen"), ("stolen_card", "", "lost_or_stolen"), ("pickup_card", "", "lost_or_stolen"),
    ("", "41", "lost_or_stolen"), ("", "43", "lost_or_stolen"), ("", "04", "lost_or_stolen"),
    ("", "07", "fraud_or_stolen"), ("fraudulent", "41", "fraud_or_stolen"), ("merchant_blacklist", "", "fraud_or_stolen"),
    ("", "", "fraud_or_stolen"),
])
def test_lost_stolen_and_pickup_codes_are_told_from_fraud(decline_code, visa, key):
    c = C("fraud_or_stolen", "stop", network_stop=bool(visa), decline_code=decline_code, network_decline_code=visa)
    assert step_key(c) == key


def test_mastercard_mac_03_gets_a_message_asking_for_another_card_never_a_recharge():
    pol = policy(steps={"do_not_retry": [r(1), m(0), m(72)]})
    result = plan(c=MAC03, pol=pol, pay=payment(card_brand="mastercard"))
    assert result.attempt.kind == "notification"
    assert "asking for another card" in result.attempt.reason
    assert "the card network forbids any automatic reattempt" in result.attempt.reason
    done = plan(c=MAC03, pol=pol, history=PaymentHistory(notifications=2, last_step_at=NOW))
    assert done.attempt is None


def test_mac_03_without_message_steps_stops_and_the_reason_says_why():
    result = plan(c=MAC03, pol=policy(steps={"do_not_retry": []}), pay=payment(card_brand="mastercard"))
    assert result.attempt is None
    assert "MAC 03" in result.reason
    assert "the card network forbids any automatic reattempt" in result.reason


# --- Card networks' limits ---------------------------------------------------------------------------------


MANY = policy(steps={"insufficient_funds": [r(24)] * 15})


def test_sixteenth_visa_attempt_for_the_same_card_and_amount_is_never_scheduled():
    made = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 16)]
    result = plan(card=CardHistory(made), pol=MANY, channels=())
    assert result.attempt is None
    assert "at most 15 automatic reattempts per card and amount in 30 days" in result.reason
    assert result.limit_code == NetworkLimit.VISA_15_30D


def test_a_message_in_place_of_a_recharge_the_visa_limit_refused_carries_its_code():
    made = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 16)]
    result = plan(card=CardHistory(made))  # the default policy's next step is a message
    assert result.attempt.kind == "notification"
    assert result.attempt.limit_code == result.limit_code == NetworkLimit.VISA_15_30D


def test_a_plan_no_limit_touched_has_no_limit_code():
    result = plan(card=CardHistory([]), pol=MANY)
    assert result.attempt.kind == "auto_retry"
    assert result.attempt.limit_code == result.limit_code == ""


def test_fifteenth_attempt_is_allowed_and_other_amounts_do_not_count():
    made = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 15)]
    assert plan(card=CardHistory(made), pol=MANY).attempt.kind == "auto_retry"
    other_amounts = [(999, "USD", NOW - timedelta(days=1))] * 20 + [(1000, "EUR", NOW)] * 20
    assert plan(card=CardHistory(other_amounts), pol=MANY).attempt.kind == "auto_retry"


def test_attempts_older_than_thirty_days_do_not_count():
    old = [(1000, "USD", NOW - timedelta(days=31))] * 15
    assert plan(card=CardHistory(old), pol=MANY).attempt.kind == "auto_retry"


def test_mastercard_ten_per_day_pushes_the_retry_later():
    when = NOW + timedelta(days=1)
    recent = [(500 + i, "USD", when - timedelta(hours=i + 1)) for i in range(10)]
    allowed, note, code = check_network_limits(
        card_brand="mastercard", card=CardHistory(recent), amount=1000, currency="USD", when=when
    )
    # The oldest of the last ten was 10 h before; room again 24 h after it.
    assert allowed == when - timedelta(hours=10) + timedelta(hours=24)
    assert "Mastercard allows at most 10" in note
    assert code == NetworkLimit.MASTERCARD_10_24H
    visa_allowed, _, visa_code = check_network_limits(card_brand="visa", card=CardHistory(recent), amount=1000, currency="USD", when=when)
    assert (visa_allowed, visa_code) == (when, "")


def test_no_recharge_provider_falls_back_to_a_message_and_explains():
    result = plan(recharge=(False, "Automatic re-charges through Stripe need a connected Stripe account."))
    assert result.attempt.kind == "notification"
    assert "automatic re-charges through stripe need a connected stripe account" in result.attempt.reason.lower()


def test_no_reachable_channel_stops_and_says_so():
    result = plan(c=EXPIRED, channels=())
    assert result.attempt is None
    assert "no way to reach the customer" in result.reason


# --- The recovery window -----------------------------------------------------------------------------------


def test_window_end_exhausts_the_recovery():
    pay = payment(recovery_ends_at=NOW - timedelta(seconds=1))
    result = plan(pay=pay)
    assert result.attempt is None
    assert result.status == PaymentStatus.EXHAUSTED
    assert "recovery window has ended" in result.reason


def test_retry_beyond_the_window_is_not_planned():
    pay = payment(recovery_ends_at=NOW + timedelta(hours=2))
    result = plan(pay=pay, pol=policy(steps={"insufficient_funds": [r(24)]}))
    assert result.attempt is None
    assert "would fall after the recovery window ends" in result.reason


def test_a_message_beyond_the_window_is_not_planned():
    pay = payment(recovery_ends_at=NOW + timedelta(hours=2))
    result = plan(pay=pay, c=EXPIRED, pol=policy(steps={"expired_card": [m(0), m(24)]}),
                  history=PaymentHistory(notifications=1, last_step_at=NOW))
    assert result.attempt is None
    assert "no further message fits in the recovery window" in result.reason


@pytest.mark.parametrize("status", [PaymentStatus.RECOVERED, PaymentStatus.CANCELLED])
def test_finished_payments_get_no_plan(status):
    result = plan(pay=payment(status=status))
    assert result.attempt is None
    assert result.status == status


def test_the_psps_own_retry_keeps_tinko_24_hours_away():
    psp_retry = NOW + timedelta(hours=10)
    result = plan(pay=payment(provider_retry_at=psp_retry))
    assert result.attempt.scheduled_for == psp_retry + timedelta(hours=24)
    assert "after the payment provider's own retry" in result.attempt.reason


def test_the_psps_own_retry_far_from_tinkos_changes_nothing():
    result = plan(pay=payment(provider_retry_at=NOW + timedelta(days=5)))
    assert result.attempt.scheduled_for == NOW + timedelta(days=1)


def test_the_psps_own_retry_counts_against_the_visa_limit():
    old = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 15)]  # 14 in 30 days
    result = plan(pay=payment(provider_retry_at=NOW + timedelta(days=5)), card=CardHistory(attempts=old))
    assert result.attempt.kind == "notification"  # the default policy's message, in place of the re-charge
    assert "at most 15 automatic reattempts" in result.reason
    assert result.limit_code == NetworkLimit.VISA_15_30D
    assert plan(card=CardHistory(attempts=old)).attempt.kind == "auto_retry"  # without it, one more fits
# --- Retry now and a changed card go through the planner -------------------------------------------------


NIGHT = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def retry_now(**kw):
    args = dict(payment=payment(), classification=INSUFFICIENT, card=CardHistory(), can_recharge=(True, ""),
                policy=policy(), tz=UTC, now=NIGHT, requested_by="ana@example.com")
    args.update(kw)
    return plan_retry_now(**args)


def test_retry_now_in_quiet_hours_waits_for_their_end():
    result = retry_now()
    assert result.attempt.scheduled_for == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert "moved to the end of the customer's quiet hours in UTC" in result.attempt.reason


def test_retry_now_may_override_quiet_hours_when_a_person_asks_and_says_so():
    result = retry_now(override_quiet_hours=True)
    assert result.attempt.scheduled_for == NIGHT
    assert "ana@example.com chose to override them" in result.attempt.reason


def test_retry_now_outside_quiet_hours_runs_now():
    assert retry_now(now=NOW).attempt.scheduled_for == NOW


def test_retry_now_respects_network_stops_and_limits():
    assert retry_now(classification=MAC03).attempt is None
    made = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 16)]
    refused = retry_now(card=CardHistory(made), now=NOW)
    assert refused.attempt is None and "at most 15" in refused.reason


def card_changed(**kw):
    args = dict(payment=payment(status=PaymentStatus.RECOVERING), classification=EXPIRED, card=CardHistory(),
                can_recharge=(True, ""), policy=policy(), tz=KOLKATA, now=NIGHT, source="Stripe card updater",
                card_replaced=True)
    args.update(kw)
    return plan_card_changed(**args)


def test_a_card_update_in_quiet_hours_recharges_after_them():
    # 23:00 UTC is 04:30 in Kolkata: quiet until 08:00 local.
    result = card_changed()
    assert result.attempt.scheduled_for == datetime(2026, 11, 26, 8, 0, tzinfo=KOLKATA)
    assert "The card was updated (Stripe card updater)" in result.attempt.reason
    assert "outside quiet hours in Asia/Kolkata" in result.attempt.reason


def test_a_card_update_respects_the_network_limits_and_window():
    made = [(1000, "USD", NOW - timedelta(days=d)) for d in range(1, 16)]
    assert card_changed(card=CardHistory(made)).attempt is None
    late = card_changed(payment=payment(recovery_ends_at=NIGHT + timedelta(hours=1)))
    assert late.attempt is None and "after the recovery window ends" in late.reason


def test_a_network_stop_is_lifted_only_by_a_different_card():
    assert card_changed(classification=MAC03, card_replaced=False).attempt is None
    assert card_changed(classification=MAC03, card_replaced=True).attempt is not None


# --- The steps' shape, and old policies ----------------------------------------------------------------


def test_validation_rejects_fraud_steps_recharges_for_customer_action_and_bad_channels():
    errors = validate_steps({
        "fraud_or_stolen": [m(0)], "expired_card": [r(1)], "card_declined": [m(0, "fax")],
        "insufficient_funds": [{"action": "recharge", "after_seconds": 5}], "nonsense": [],
    })
    assert set(errors) == {"fraud_or_stolen", "expired_card", "card_declined", "insufficient_funds", "nonsense"}
    assert validate_steps(default_steps()) == {}


def test_an_old_policy_becomes_the_same_schedule_in_steps():
    steps = from_legacy(
        max_retries=4, initial_delay_seconds=86400, backoff_multiplier=2, max_delay_seconds=5 * 86400,
        max_notifications=2, notification_interval_seconds=2 * 86400, notify_on_hard_decline=True,
        category_overrides={"processing_error": {"max_retries": 2, "initial_delay_seconds": 3600}},
    )
    assert steps["insufficient_funds"] == [r(24), r(48), r(96), r(120), m(0), m(48)]
    assert steps["processing_error"] == [r(1), r(2), m(0), m(48)]
    assert steps["expired_card"] == [m(0), m(48)]
    assert steps["do_not_retry"] == [m(0)]
    assert steps["unknown"] == []
    assert "fraud_or_stolen" not in steps
    assert validate_steps(steps) == {}
    quiet = from_legacy(
        max_retries=0, initial_delay_seconds=60, backoff_multiplier=1, max_delay_seconds=60, max_notifications=0,
        notification_interval_seconds=3600, notify_on_hard_decline=False, category_overrides={},
    )
    assert quiet["do_not_retry"] == [] and quiet["insufficient_funds"] == []


def test_default_steps_message_soft_declines_alongside_recharges():
    for key in ("insufficient_funds", "card_declined", "processing_error", "network_error"):
        actions = [s["action"] for s in DEFAULT_STEPS[key]]
        assert "recharge" in actions and "message" in actions
        assert actions.index("message") < len(actions) - 1 - actions[::-1].index("recharge")
    assert all(s["action"] == "message" for s in DEFAULT_STEPS["lost_or_stolen"])


def test_default_insufficient_funds_steps_recharge_every_three_or_four_days_inside_the_window():
    # Money that arrives on a payday usually stays several days: this rhythm meets most paydays.
    waits = [s["after_seconds"] for s in DEFAULT_STEPS["insufficient_funds"] if s["action"] == "recharge"]
    assert waits[0] == DAY.total_seconds()
    assert len(waits) == 7
    assert set(waits[1:]) == {3 * DAY.total_seconds(), 4 * DAY.total_seconds()}
    for key, steps in DEFAULT_STEPS.items():
        # Every default step fits in a new policy's window, and no category exceeds the networks' cap.
        assert sum(s["after_seconds"] for s in steps) < RetryPolicy().recovery_window_days * DAY.total_seconds(), key
        assert sum(1 for s in steps if s["action"] == "recharge") <= 15, key


def test_new_policies_align_insufficient_funds_to_the_customers_learnt_payday_only():
    new = RetryPolicy(name="New")
    assert (new.payday_alignment, new.payday_days, new.recovery_window_days) == (True, [], 28)
    # No history: no merchant-wide payday moves the re-charge (most people are paid weekly or fortnightly).
    without = plan(pol=new)
    assert without.attempt.scheduled_for == NOW + DAY
    assert "aligned" not in without.attempt.reason
    # A customer whose payments went through on Fridays is re-charged on Friday.
    fridays = CustomerTiming(weekday=4, payday_basis="4 of 4 past payments went through on a Friday")
    with_history = plan(pol=new, timing=fridays)
    assert with_history.attempt.scheduled_for == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert "aligned to this customer's payday, a Friday" in with_history.attempt.reason
