"""Staff edit the classifier's rules in the Django admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recovery import classifier
from recovery.classifier import classify, invalidate_rules
from recovery.models import ClassificationRule
from tests.conftest import login, make_user


def changelist_url():
    return reverse("admin:recovery_classificationrule_changelist")


@pytest.fixture(autouse=True)
def _cold_rules():
    classifier.connect_signals()
    invalidate_rules()
    yield
    invalidate_rules()


@pytest.fixture
def staff_client(db):
    user = make_user("staff@tinko.test")
    user.is_staff = user.is_superuser = True
    user.save()
    return login(user)


def _change_url(rule):
    return reverse("admin:recovery_classificationrule_change", args=[rule.pk])


def _form_data(rule, **changes):
    data = {
        "organization": rule.organization_id or "",
        "provider": rule.provider,
        "field": rule.field,
        "value": rule.value,
        "priority": rule.priority,
        "category": rule.category,
        "action": rule.action,
        "min_delay_seconds": rule.min_delay_seconds,
        "description": rule.description,
        "is_active": "on" if rule.is_active else "",
    }
    if rule.network_stop:
        data["network_stop"] = "on"
    return data | changes


def _default(field, value, provider="stripe"):
    return ClassificationRule.objects.get(organization=None, provider=provider, field=field, value=value)


def test_changelist_loads_for_a_superuser(staff_client):
    response = staff_client.get(changelist_url())

    assert response.status_code == 200
    assert response.context["cl"].result_count == ClassificationRule.objects.count()


def test_search_finds_rules_by_value_and_description(staff_client):
    by_value = staff_client.get(changelist_url(), {"q": "withdrawal_count_limit_exceeded"})
    by_description = staff_client.get(changelist_url(), {"q": '"has been reported stolen"'})

    assert [r.value for r in by_value.context["cl"].result_list] == ["withdrawal_count_limit_exceeded"]
    assert {r.value for r in by_description.context["cl"].result_list} == {"stolen_card"}


def test_scope_filter_separates_defaults_from_organization_rules(staff_client, org):
    own = ClassificationRule.objects.create(
        organization=org, provider="stripe", field="decline_code", value="insufficient_funds",
        category="do_not_retry", action="stop", description="Acme never retries these",
    )

    overrides = staff_client.get(changelist_url(), {"scope": "organization"}).context["cl"]
    defaults = staff_client.get(changelist_url(), {"scope": "default"}).context["cl"]

    assert list(overrides.result_list) == [own]
    assert defaults.result_count == ClassificationRule.objects.filter(organization=None).count()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider": "razorpay", "field__exact": "code"}, {"SERVER_ERROR"}),
        ({"provider": "any", "field__exact": "mastercard_advice", "category__exact": "expired_card"}, {"01"}),
        ({"field__exact": "mastercard_advice", "network_stop__exact": "1"}, {"03", "21"}),
        ({"field__exact": "visa_code", "category__exact": "network_error"}, {"91"}),
        ({"field__exact": "message", "action__exact": "customer_action"}, None),
    ],
    ids=["provider", "any-provider", "network-stop", "category", "action"],
)
def test_list_filters_narrow_the_rules(staff_client, params, expected):
    response = staff_client.get(changelist_url(), params)

    values = {r.value for r in response.context["cl"].result_list}
    if expected is None:
        expected = set(
            ClassificationRule.objects.filter(field="message", action="customer_action").values_list("value", flat=True)
        )
        assert len(expected) == 3  # authentication, invalid card details, expired card
    assert values == expected


def test_change_form_loads(staff_client):
    rule = _default("decline_code", "insufficient_funds")

    assert staff_client.get(_change_url(rule)).status_code == 200


def test_staff_edit_through_the_change_form_reaches_the_classifier(staff_client):
    rule = _default("decline_code", "do_not_honor")
    assert classify(organization=None, provider="stripe", decline_code="do_not_honor").category == "card_declined"

    response = staff_client.post(
        _change_url(rule), _form_data(rule, category="do_not_retry", action="stop", description="Never retried here")
    )

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    rule.refresh_from_db()
    assert (rule.category, rule.action, rule.description) == ("do_not_retry", "stop", "Never retried here")
    result = classify(organization=None, provider="stripe", decline_code="do_not_honor")
    assert (result.category, result.rule_id) == ("do_not_retry", rule.pk)
    assert "Never retried here" in result.reason


def test_staff_can_add_an_organization_override(staff_client, org):
    response = staff_client.post(
        reverse("admin:recovery_classificationrule_add"),
        {
            "organization": org.pk, "provider": "stripe", "field": "decline_code", "value": "insufficient_funds",
            "priority": 100, "category": "do_not_retry", "action": "stop", "min_delay_seconds": 0,
            "description": "Acme never retries these", "is_active": "on",
        },
    )

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert classify(organization=org, provider="stripe", decline_code="insufficient_funds").category == "do_not_retry"


def test_second_default_for_the_same_code_is_refused(staff_client):
    response = staff_client.post(
        reverse("admin:recovery_classificationrule_add"),
        {
            "organization": "", "provider": "stripe", "field": "decline_code", "value": "insufficient_funds",
            "priority": 100, "category": "card_declined", "action": "auto_retry", "min_delay_seconds": 0,
            "description": "Duplicate", "is_active": "on",
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert ClassificationRule.objects.filter(organization=None, value="insufficient_funds", field="decline_code",
                                             provider="stripe").count() == 1


def test_invalid_message_pattern_is_refused(staff_client):
    rule = ClassificationRule.objects.filter(organization=None, field="message").first()

    response = staff_client.post(_change_url(rule), _form_data(rule, value="(unclosed"))

    assert response.status_code == 200
    assert "Not a valid regular expression" in response.context["adminform"].form.errors["value"][0]
    rule.refresh_from_db()
    assert rule.value != "(unclosed"
