"""The decline classifier: every reference row, precedence, advice codes, network rules, overrides, caching.

tests/fixtures/decline_codes.csv is the shared decline-code reference as data: every row
of every table, with the category Tinko documents for it. Columns: ``table`` (which
reference table), ``provider`` (blank: any), ``field`` (the classify() argument the code
arrives in), ``code`` (for free-text examples: the fallback order 1-10), ``brand`` (network
rows), ``message`` (free-text examples), ``category``, ``expected_auto_retry``,
``network_stop``, ``judgement`` (the reference marks the mapping a judgement call),
``rule_field`` (the ClassificationRule.field of the default rule that carries the row;
blank when the behaviour is built into the classifier or the code is deliberately not
mapped) and ``description`` (the reference's paraphrase).
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.core.cache import cache
from django.db import transaction

from recovery import classifier
from recovery.classifier import CATEGORY_ACTIONS, classify, invalidate_rules
from recovery.models import ClassificationRule

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "decline_codes.csv"
with FIXTURE.open(newline="", encoding="utf-8") as f:
    ROWS = list(csv.DictReader(f))
# A Visa response code in none of the reference's tables stands for the "(other)" row.
VISA_UNLISTED = "N0"
MIGRATION = import_module("recovery.migrations.0002_default_classification_rules")


@pytest.fixture(autouse=True)
def _cold_rules():
    # Production wires the signals in RecoveryConfig.ready(); connecting twice is a no-op.
    classifier.connect_signals()
    invalidate_rules()
    yield
    invalidate_rules()


def _row_id(row):
    return f"{row['table']}:{row['message'] or row['code']}"


def _classify_row(row, organization):
    kwargs = {"organization": organization, "provider": row["provider"] or "stripe"}
    field, value = row["field"], row["code"]
    if field == "message":
        kwargs["message"] = row["message"]
    elif field == "network_decline_code":
        kwargs.update(network_decline_code=VISA_UNLISTED if value == "(other)" else value, card_brand=row["brand"])
    elif field == "network_advice_code":
        kwargs.update(network_advice_code=value, card_brand=row["brand"])
    else:
        kwargs[field] = value
    return classify(**kwargs)


def _default(provider, field, value):
    return ClassificationRule.objects.get(organization=None, provider=provider, field=field, value=value)


def _override(org, *, provider="stripe", field="decline_code", value="insufficient_funds", **fields):
    values = {"category": "do_not_retry", "action": "stop", "description": "Acme never retries these"} | fields
    return ClassificationRule.objects.create(organization=org, provider=provider, field=field, value=value, **values)


# --- The reference, row by row --------------------------------------------------------------


def test_fixture_holds_every_row_of_the_reference():
    counts = Counter(row["table"] for row in ROWS)

    # The reference's "Row counts" section (advice codes without the two network-field rows).
    assert counts["stripe_decline_code"] == 50
    assert counts["stripe_lpm_decline_code"] == 18
    assert counts["stripe_error_code"] == 30
    assert counts["stripe_advice_code"] == 3
    assert counts["razorpay_reason"] == 115
    assert counts["razorpay_error_code"] == 3
    assert counts["visa_code"] == 47
    assert counts["mastercard_mac"] == 12
    assert {row["code"] for row in ROWS if row["table"] == "free_text_example"} == {str(n) for n in range(1, 11)}


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_reference_row_classifies_as_documented(org, row):
    result = _classify_row(row, org)

    assert result.category == row["category"]
    assert result.retryable is (row["expected_auto_retry"] == "true")
    assert result.network_stop is (row["network_stop"] == "true")


def test_sandbox_is_classified_like_stripe(org):
    stripe_rows = [row for row in ROWS if row["provider"] == "stripe" and row["field"] in ("decline_code", "code")]

    differences = [
        row["code"]
        for row in stripe_rows
        if classify(organization=org, provider="sandbox", **{row["field"]: row["code"]}).category != row["category"]
    ]

    assert stripe_rows and differences == []


# --- The default rules shipped by the data migration ----------------------------------------


def _expected_code_rules():
    return {
        (row["provider"], row["rule_field"], row["code"]): row["category"]
        for row in ROWS
        if row["rule_field"] and row["rule_field"] != "message"
    }


def _expected_message_categories():
    orders = {(int(row["code"]), row["category"]) for row in ROWS if row["rule_field"] == "message"}
    return [category for _order, category in sorted(orders)]


def test_default_code_rules_are_the_fixture_rows(db):
    shipped = ClassificationRule.objects.filter(organization=None).exclude(field="message")

    assert {(r.provider, r.field, r.value): r.category for r in shipped} == _expected_code_rules()


def test_default_message_rules_follow_the_free_text_order(db):
    shipped = ClassificationRule.objects.filter(organization=None, field="message").order_by("priority")

    assert [r.category for r in shipped] == _expected_message_categories()
    assert {r.provider for r in shipped} == {""}


def test_default_rule_count_matches_the_fixture(db):
    expected = len(_expected_code_rules()) + len(_expected_message_categories())

    assert ClassificationRule.objects.filter(organization=None).count() == expected


def test_default_rules_act_as_their_category_says(db):
    wrong = [
        (r.value, r.category, r.action)
        for r in ClassificationRule.objects.filter(organization=None)
        if r.action != CATEGORY_ACTIONS[r.category]
    ]
    assert wrong == []


def test_every_default_rule_has_a_description(db):
    assert not ClassificationRule.objects.filter(organization=None, description="").exists()


def test_data_migration_is_reversible():
    assert all(operation.reversible for operation in MIGRATION.Migration.operations)


def test_migration_reverse_keeps_organization_rules(org):
    override = _override(org)

    MIGRATION.remove_default_rules(django_apps, None)

    assert not ClassificationRule.objects.filter(organization=None).exists()
    assert list(ClassificationRule.objects.all()) == [override]


def test_migration_reverse_keeps_default_rules_staff_added(db):
    added = ClassificationRule.objects.create(
        provider="stripe", field="decline_code", value="brand_new_code", category="card_declined",
        action="auto_retry", description="Added by staff",
    )

    MIGRATION.remove_default_rules(django_apps, None)

    assert list(ClassificationRule.objects.all()) == [added]


def test_migration_applies_again_after_its_reverse(db):
    MIGRATION.remove_default_rules(django_apps, None)
    MIGRATION.add_default_rules(django_apps, None)

    expected = len(_expected_code_rules()) + len(_expected_message_categories())
    assert ClassificationRule.objects.filter(organization=None).count() == expected


# --- Fallbacks ------------------------------------------------------------------------------


def test_unknown_decline_code_falls_back_to_the_message(org):
    result = classify(
        organization=org, provider="stripe", code="card_declined", decline_code="brand_new_code",
        message="Your card has insufficient funds.",
    )

    assert result.category == "insufficient_funds"
    assert result.rule_id == _default("", "message", MIGRATION.MESSAGE_RULES[5][2]).pk
    assert result.reason.startswith("No rule for Stripe decline code brand_new_code. Message ")


def test_nothing_matched_is_unknown_for_manual_review(org):
    result = classify(organization=org, provider="stripe", decline_code="brand_new_code", message="Something odd")

    assert (result.category, result.action, result.retryable, result.rule_id) == ("unknown", "stop", False, None)
    assert result.reason == (
        'No rule matched (Stripe decline code brand_new_code, message "Something odd"); needs manual review.'
    )


def test_code_mapped_to_unknown_does_not_fall_back_to_the_message(org):
    result = classify(organization=org, provider="razorpay", decline_code="invalid_request", message="Insufficient funds")

    assert result.category == "unknown"
    assert result.rule_id == _default("razorpay", "decline_code", "invalid_request").pk


def test_razorpay_error_code_alone_falls_back_to_the_message(org):
    result = classify(
        organization=org, provider="razorpay", code="BAD_REQUEST_ERROR", message="Payment failed due to low balance"
    )

    assert result.category == "insufficient_funds"


def test_other_provider_is_read_by_message_only(org):
    # Stripe's vocabulary belongs to Stripe (and the sandbox); other PSPs' codes mean other things.
    result = classify(organization=org, provider="other", decline_code="insufficient_funds", message="Card expired")

    assert result.category == "expired_card"


def test_codes_match_whatever_their_case(org):
    assert classify(organization=org, provider="razorpay", code="server_error").category == "processing_error"
    assert classify(organization=org, provider="stripe", decline_code="Insufficient_Funds").category == "insufficient_funds"


def test_single_digit_visa_code_reads_as_two_digits(org):
    assert classify(organization=org, provider="stripe", network_decline_code="5", card_brand="visa").category == "card_declined"


def test_unlisted_network_code_of_an_unknown_brand_is_not_guessed(org):
    result = classify(organization=org, provider="stripe", network_decline_code=VISA_UNLISTED)

    assert result.category == "unknown"
    assert f"network decline code {VISA_UNLISTED}" in result.reason


# --- Precedence -----------------------------------------------------------------------------


def test_decline_code_beats_the_error_code(org):
    result = classify(organization=org, provider="stripe", code="card_declined", decline_code="insufficient_funds")

    assert result.category == "insufficient_funds"
    assert result.rule_id == _default("stripe", "decline_code", "insufficient_funds").pk


def test_decline_code_beats_a_visa_code_that_is_not_a_hard_stop(org):
    result = classify(
        organization=org, provider="stripe", decline_code="insufficient_funds", network_decline_code="05", card_brand="visa"
    )

    assert result.category == "insufficient_funds"


def test_listed_visa_code_beats_the_generic_error_code(org):
    result = classify(organization=org, provider="stripe", code="card_declined", network_decline_code="51", card_brand="visa")

    assert result.category == "insufficient_funds"
    assert result.rule_id == _default("", "visa_code", "51").pk


def test_visa_code_is_not_read_for_a_mastercard(org):
    result = classify(
        organization=org, provider="stripe", code="card_declined", network_decline_code="41", card_brand="MasterCard"
    )

    assert (result.category, result.network_stop) == ("card_declined", False)


def test_mastercard_advice_is_not_read_for_a_visa_card(org):
    result = classify(
        organization=org, provider="stripe", decline_code="generic_decline", network_advice_code="03", card_brand="visa"
    )

    assert (result.category, result.network_stop) == ("card_declined", False)


def test_rate_limited_card_waits_24_hours(org):
    result = classify(organization=org, provider="stripe", code="card_decline_rate_limit_exceeded")

    assert (result.category, result.retryable, result.min_delay) == ("card_declined", True, timedelta(hours=24))


def test_rate_limit_wait_applies_when_a_decline_code_decides(org):
    result = classify(
        organization=org, provider="stripe", code="card_decline_rate_limit_exceeded", decline_code="generic_decline"
    )

    assert (result.category, result.min_delay) == ("card_declined", timedelta(hours=24))
    assert "card_decline_rate_limit_exceeded" in result.reason


# --- Stripe advice codes ---------------------------------------------------------------------


def test_do_not_try_again_stops_a_retryable_decline(org):
    result = classify(organization=org, provider="stripe", decline_code="insufficient_funds", advice_code="do_not_try_again")

    assert (result.category, result.action) == ("do_not_retry", "stop")
    assert "Stripe advice code do_not_try_again" in result.reason
    assert "built-in rule" in result.reason


def test_do_not_try_again_keeps_a_hard_category(org):
    result = classify(organization=org, provider="stripe", decline_code="expired_card", advice_code="do_not_try_again")

    assert (result.category, result.action) == ("expired_card", "customer_action")


def test_confirm_card_data_turns_a_retryable_decline_into_invalid_card(org):
    result = classify(organization=org, provider="stripe", decline_code="generic_decline", advice_code="confirm_card_data")

    assert (result.category, result.action) == ("invalid_card", "customer_action")
    assert "Stripe advice code confirm_card_data" in result.reason


def test_confirm_card_data_turns_unknown_into_invalid_card(org):
    result = classify(
        organization=org, provider="stripe", decline_code="invalid_business_account", advice_code="confirm_card_data"
    )

    assert result.category == "invalid_card"


def test_confirm_card_data_keeps_an_expired_card(org):
    result = classify(organization=org, provider="stripe", decline_code="expired_card", advice_code="confirm_card_data")

    assert result.category == "expired_card"


def test_try_again_later_keeps_a_retryable_category(org):
    result = classify(organization=org, provider="stripe", decline_code="insufficient_funds", advice_code="try_again_later")

    assert (result.category, result.retryable) == ("insufficient_funds", True)


def test_try_again_later_never_makes_a_hard_decline_retryable(org):
    result = classify(organization=org, provider="stripe", decline_code="fraudulent", advice_code="try_again_later")

    assert (result.category, result.retryable) == ("fraud_or_stolen", False)


def test_try_again_later_does_not_retry_an_explicitly_unknown_code(org):
    result = classify(
        organization=org, provider="stripe", code="payment_intent_payment_attempt_failed", advice_code="try_again_later"
    )

    assert (result.category, result.retryable) == ("unknown", False)


def test_advice_code_counts_as_a_match_so_the_message_is_not_read(org):
    result = classify(
        organization=org, provider="stripe", decline_code="brand_new_code", advice_code="do_not_try_again",
        message="Insufficient funds",
    )

    assert result.category == "do_not_retry"


# --- Card-network rules ----------------------------------------------------------------------


@pytest.mark.parametrize("mac", ["03", "21"])
def test_mastercard_mac_stops_even_a_soft_decline(org, mac):
    result = classify(
        organization=org, provider="stripe", decline_code="insufficient_funds", network_advice_code=mac,
        card_brand="mastercard",
    )

    assert (result.category, result.action, result.network_stop) == ("do_not_retry", "stop", True)
    assert result.rule_id == _default("", "mastercard_advice", mac).pk
    assert f"Mastercard advice code {mac}" in result.reason
    assert "never retried automatically" in result.reason


@pytest.mark.parametrize(("code", "category"), [("04", "fraud_or_stolen"), ("14", "invalid_card"), ("R1", "do_not_retry")])
def test_visa_category_1_code_stops_even_a_soft_decline(org, code, category):
    # No brand given: the raw code is read as Visa's.
    result = classify(organization=org, provider="stripe", decline_code="generic_decline", network_decline_code=code)

    assert (result.category, result.retryable, result.network_stop) == (category, False, True)
    assert "Visa category 1: issuer will never approve" in result.reason
    assert "The card network forbids any reattempt" in result.reason


def test_network_stop_is_never_auto_retried_whatever_the_rule_says(org):
    _override(org, provider="", field="visa_code", value="57", category="card_declined", action="auto_retry", network_stop=True)

    result = classify(organization=org, provider="stripe", network_decline_code="57", card_brand="visa")

    assert (result.network_stop, result.retryable, result.action) == (True, False, "stop")


@pytest.mark.parametrize(
    ("mac", "delay"),
    [
        ("24", timedelta(hours=1)),
        ("25", timedelta(hours=24)),
        ("26", timedelta(days=2)),
        ("27", timedelta(days=4)),
        ("28", timedelta(days=6)),
        ("29", timedelta(days=8)),
        ("30", timedelta(days=10)),
    ],
)
def test_mastercard_retry_after_mac_sets_the_earliest_retry(org, mac, delay):
    result = classify(
        organization=org, provider="stripe", code="card_declined", decline_code="insufficient_funds",
        network_advice_code=mac, card_brand="mastercard",
    )

    assert (result.category, result.retryable, result.min_delay) == ("insufficient_funds", True, delay)
    assert "Earliest automatic retry in" in result.reason


def test_retry_after_mac_makes_a_generic_decline_insufficient_funds(org):
    result = classify(
        organization=org, provider="stripe", decline_code="generic_decline", network_advice_code="25", card_brand="mastercard"
    )

    assert result.category == "insufficient_funds"
    assert result.rule_id == _default("", "mastercard_advice", "25").pk


def test_retry_after_mac_does_not_soften_a_hard_decline(org):
    result = classify(
        organization=org, provider="stripe", decline_code="stolen_card", network_advice_code="25", card_brand="mastercard"
    )

    assert (result.category, result.retryable, result.min_delay) == ("fraud_or_stolen", False, timedelta(0))


def test_unlisted_visa_code_on_a_visa_card_is_a_generic_decline(org):
    result = classify(organization=org, provider="stripe", network_decline_code=VISA_UNLISTED, card_brand="Visa")

    assert (result.category, result.retryable, result.rule_id) == ("card_declined", True, None)
    assert "Visa category 4" in result.reason


# --- Reasons ----------------------------------------------------------------------------------


def test_reason_names_the_rule(org):
    rule = _default("stripe", "decline_code", "insufficient_funds")

    result = classify(organization=org, provider="stripe", decline_code="insufficient_funds")

    assert result.rule_id == rule.pk
    assert result.reason == (
        f"Stripe decline code insufficient_funds: Not enough money/credit on the card for this amount (rule #{rule.pk})."
    )


def test_message_reason_quotes_the_message_and_names_the_rule(org):
    rule = _default("", "message", MIGRATION.MESSAGE_RULES[4][2])

    result = classify(organization=org, provider="other", message="Card expired")

    assert result.reason == f'Message "Card expired" matched a pattern: Message says the card has expired (rule #{rule.pk}).'


# --- Organization overrides -------------------------------------------------------------------


def test_organization_override_wins_for_that_organization_only(org, other_org):
    override = _override(org)

    mine = classify(organization=org, provider="stripe", decline_code="insufficient_funds")
    theirs = classify(organization=other_org, provider="stripe", decline_code="insufficient_funds")

    assert (mine.category, mine.retryable, mine.rule_id) == ("do_not_retry", False, override.pk)
    assert f"this organization's rule #{override.pk}" in mine.reason
    assert (theirs.category, theirs.retryable) == ("insufficient_funds", True)


def test_organization_may_be_given_by_id(org):
    override = _override(org)

    assert classify(organization=org.pk, provider="stripe", decline_code="insufficient_funds").rule_id == override.pk


def test_inactive_override_is_ignored(org):
    _override(org, is_active=False)

    assert classify(organization=org, provider="stripe", decline_code="insufficient_funds").category == "insufficient_funds"


def test_inactive_default_rule_is_ignored(org):
    ClassificationRule.objects.filter(organization=None, value="insufficient_funds", field="decline_code").update(
        is_active=False
    )
    invalidate_rules()

    result = classify(organization=org, provider="stripe", decline_code="insufficient_funds", message="Declined")

    assert result.category == "card_declined"  # the message pattern, as for any unknown code


def test_organization_message_pattern_goes_before_defaults_of_equal_priority(org, other_org):
    _override(org, provider="", field="message", value=r"\bfunds\b", priority=60, category="card_declined", action="auto_retry")

    assert classify(organization=org, provider="other", message="Insufficient funds").category == "card_declined"
    assert classify(organization=other_org, provider="other", message="Insufficient funds").category == "insufficient_funds"


def test_organization_message_pattern_of_lower_priority_goes_after_defaults(org):
    _override(org, provider="", field="message", value=r"\bfunds\b", priority=95, category="card_declined", action="auto_retry")

    assert classify(organization=org, provider="other", message="Insufficient funds").category == "insufficient_funds"


def test_organization_rule_cannot_lift_a_network_stop(org):
    _override(org, provider="", field="mastercard_advice", value="21", category="card_declined", action="auto_retry")

    result = classify(organization=org, provider="stripe", network_advice_code="21", card_brand="mastercard")

    assert (result.category, result.action, result.network_stop) == ("do_not_retry", "stop", True)
    assert result.reason.startswith("Mastercard advice code 21: Payment cancellation")


# --- Caching and invalidation ------------------------------------------------------------------


def test_classify_makes_no_query_once_rules_are_loaded(org, django_assert_num_queries):
    classify(organization=org, provider="stripe", decline_code="insufficient_funds")

    with django_assert_num_queries(0):
        for _ in range(100):
            classify(organization=org, provider="stripe", decline_code="do_not_honor", message="Do not honor")


def test_edited_default_rule_is_seen_by_the_next_classify(org):
    assert classify(organization=org, provider="stripe", decline_code="do_not_honor").category == "card_declined"
    rule = _default("stripe", "decline_code", "do_not_honor")
    rule.category, rule.action = "do_not_retry", "stop"
    rule.save()

    assert classify(organization=org, provider="stripe", decline_code="do_not_honor").category == "do_not_retry"


def test_new_override_is_seen_by_the_next_classify(org):
    classify(organization=org, provider="stripe", decline_code="insufficient_funds")
    _override(org)

    assert classify(organization=org, provider="stripe", decline_code="insufficient_funds").category == "do_not_retry"


def test_deleted_override_is_seen_by_the_next_classify(org):
    override = _override(org)
    classify(organization=org, provider="stripe", decline_code="insufficient_funds")

    override.delete()

    assert classify(organization=org, provider="stripe", decline_code="insufficient_funds").category == "insufficient_funds"


def test_rolled_back_edit_is_not_seen(org):
    classify(organization=org, provider="stripe", decline_code="do_not_honor")
    with pytest.raises(RuntimeError), transaction.atomic():
        rule = _default("stripe", "decline_code", "do_not_honor")
        rule.category, rule.action = "do_not_retry", "stop"
        rule.save()
        assert classify(organization=org, provider="stripe", decline_code="do_not_honor").category == "do_not_retry"
        raise RuntimeError("roll back")

    assert classify(organization=org, provider="stripe", decline_code="do_not_honor").category == "card_declined"


def test_committed_rule_change_bumps_the_shared_version(db, django_capture_on_commit_callbacks):
    classify(organization=None, provider="stripe", decline_code="do_not_honor")
    before = cache.get(classifier.VERSION_KEY)

    with django_capture_on_commit_callbacks(execute=True):
        rule = _default("stripe", "decline_code", "do_not_honor")
        rule.description = "Declined without a reason"
        rule.save()

    assert cache.get(classifier.VERSION_KEY) not in (None, before)


def test_rules_are_cached_until_the_version_changes(org, monkeypatch):
    # Another process edits a rule: this one keeps its compiled rules until the shared version moves.
    monkeypatch.setattr(classifier, "VERSION_CHECK_SECONDS", 0)
    classify(organization=org, provider="stripe", decline_code="do_not_honor")
    ClassificationRule.objects.filter(organization=None, field="decline_code", value="do_not_honor").update(
        category="do_not_retry", action="stop"
    )
    assert classify(organization=org, provider="stripe", decline_code="do_not_honor").category == "card_declined"

    cache.set(classifier.VERSION_KEY, "bumped-by-another-process", timeout=None)

    assert classify(organization=org, provider="stripe", decline_code="do_not_honor").category == "do_not_retry"


def test_classify_keeps_working_when_the_cache_is_down(org, monkeypatch):
    classify(organization=org, provider="stripe", decline_code="insufficient_funds")
    monkeypatch.setattr(classifier, "VERSION_CHECK_SECONDS", 0)

    def broken(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(classifier.cache, "get", broken)

    assert classify(organization=org, provider="stripe", decline_code="insufficient_funds").category == "insufficient_funds"
