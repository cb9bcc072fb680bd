"""The retry-policies API (and the OpenAPI schema of the whole recovery API)."""

from __future__ import annotations

import pytest

from recovery.models import Payment, RetryPolicy
from tests.recovery.conftest import report
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db

STEPS = {
    "insufficient_funds": [
        {"action": "recharge", "after_seconds": 86400},
        {"action": "message", "after_seconds": 0, "channel": ""},
        {"action": "recharge", "after_seconds": 172800},
    ],
    "processing_error": [{"action": "recharge", "after_seconds": 600}, {"action": "recharge", "after_seconds": 3600}],
    "lost_or_stolen": [{"action": "message", "after_seconds": 0, "channel": "sms"}],
}
VALID = {
    "name": "Subscriptions",
    "steps": STEPS,
    "recovery_window_days": 30,
    "channels": ["sms", "email"],
    "quiet_hours_start": "22:00",
    "quiet_hours_end": "07:30",
    "payday_alignment": True,
    "payday_days": [15, 1],
}


def policy_data(**overrides) -> dict:
    return {**VALID, **overrides}


def create(api, **overrides) -> dict:
    response = api.post("retry_policies", policy_data(**overrides))
    assert response.status_code == 201, response.content
    return response.json()


def default_id(api) -> int:
    (default,) = [p for p in api.get("retry_policies").json() if p["is_default"]]
    return default["id"]


# --- The default ------------------------------------------------------------------


def test_a_new_organization_has_one_default_policy(api):
    response = api.get("retry_policies")

    assert response.status_code == 200
    (policy,) = response.json()
    assert policy["is_default"] is True
    assert policy["name"] == "Default"


def test_list_shows_the_default_first_then_by_name(api):
    create(api, name="Zebra")
    create(api, name="Annual")

    names = [p["name"] for p in api.get("retry_policies").json()]

    assert names == ["Default", "Annual", "Zebra"]


# --- Create -----------------------------------------------------------------------


def test_create_with_valid_data_answers_201_with_the_policy(api, org):
    response = api.post("retry_policies", VALID)

    assert response.status_code == 201
    body = response.json()
    assert body["is_default"] is False
    assert body["channels"] == ["sms", "email"]
    assert body["payday_days"] == [1, 15]
    assert body["steps"] == STEPS
    stored = RetryPolicy.objects.get(pk=body["id"])
    assert stored.organization == org
    assert stored.steps == STEPS


def test_create_is_audited(api, org, api_key):
    policy_id = create(api)["id"]

    event = AuditEvent.objects.get(organization=org, action="policy.created")

    assert event.actor_api_key == api_key[0]
    assert event.target_id == str(policy_id)
    assert event.data["name"] == "Subscriptions"
    assert event.data["changes"]["steps"] == {"from": None, "to": STEPS}


def test_a_new_default_policy_uses_tinkos_steps_and_only_channels_that_can_send(api, settings):
    from recovery.steps import default_steps

    (policy,) = api.get("retry_policies").json()

    assert policy["steps"] == default_steps()
    # No Twilio in the test settings: no SMS or WhatsApp for a new merchant.
    assert policy["channels"] == ["email"]


def test_create_as_default_moves_the_default(api):
    old_default = default_id(api)

    new = create(api, is_default=True)

    assert default_id(api) == new["id"] != old_default


def r(after):
    return {"action": "recharge", "after_seconds": after}


def m(after, channel=""):
    return {"action": "message", "after_seconds": after, "channel": channel}


INVALID = {
    "window_61_days": ({"recovery_window_days": 61}, "recovery_window_days"),
    "steps_not_an_object": ({"steps": [r(60)]}, "steps"),
    "unknown_category": ({"steps": {"bad_luck": [m(0)]}}, "steps"),
    "fraud_steps": ({"steps": {"fraud_or_stolen": [m(0)]}}, "steps"),
    "recharge_for_expired_card": ({"steps": {"expired_card": [r(3600)]}}, "steps"),
    "recharge_for_lost_card": ({"steps": {"lost_or_stolen": [r(3600)]}}, "steps"),
    "recharge_too_soon": ({"steps": {"card_declined": [r(5)]}}, "steps"),
    "unknown_action": ({"steps": {"card_declined": [{"action": "pray", "after_seconds": 0}]}}, "steps"),
    "unknown_channel_in_step": ({"steps": {"card_declined": [m(0, "pigeon")]}}, "steps"),
    "wait_not_an_integer": ({"steps": {"card_declined": [m("soon")]}}, "steps"),
    "sixteen_recharges": ({"steps": {"card_declined": [r(3600)] * 16}}, "steps"),
    "retired_setting": ({"max_retries": 4}, "max_retries"),
    "unknown_channel": ({"channels": ["email", "pigeon"]}, "channels"),
    "duplicate_channel": ({"channels": ["email", "sms", "email"]}, "channels"),
    "payday_32": ({"payday_days": [1, 32]}, "payday_days"),
    "quiet_hours_start_only": ({"quiet_hours_start": "22:00", "quiet_hours_end": None}, "quiet_hours_end"),
    "quiet_hours_end_only": ({"quiet_hours_start": None, "quiet_hours_end": "07:00"}, "quiet_hours_end"),
    "duplicate_name": ({"name": "Default"}, "name"),
}


@pytest.mark.parametrize(("overrides", "field"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_policy_is_a_400_naming_the_field_and_stores_nothing(api, overrides, field):
    response = api.post("retry_policies", policy_data(**overrides))

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert field in error["fields"], error
    assert RetryPolicy.objects.count() == 1


def test_duplicate_name_ignores_surrounding_spaces(api):
    create(api, name="Annual")

    response = api.post("retry_policies", policy_data(name="  Annual "))

    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]


def test_the_same_name_is_allowed_in_another_organization(api, other_api):
    create(api, name="Annual")

    assert other_api.post("retry_policies", policy_data(name="Annual")).status_code == 201


# --- Update -----------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(api):
    policy = create(api)

    fewer = {"insufficient_funds": [r(3600)]}
    response = api.patch(f"retry_policies/{policy['id']}", {"steps": fewer, "channels": ["email"]})

    assert response.status_code == 200
    body = response.json()
    assert (body["steps"], body["channels"]) == (fewer, ["email"])
    assert body["recovery_window_days"] == VALID["recovery_window_days"]
    stored = RetryPolicy.objects.get(pk=policy["id"])
    assert (stored.steps, stored.channels) == (fewer, ["email"])


def test_patch_is_audited_with_from_and_to(api, org, api_key):
    policy = create(api)

    api.patch(f"retry_policies/{policy['id']}", {"payday_alignment": False, "recovery_window_days": 30})

    event = AuditEvent.objects.get(organization=org, action="policy.updated")
    assert event.actor_api_key == api_key[0]
    assert event.target_id == str(policy["id"])
    # recovery_window_days was sent but did not change: only real changes are logged.
    assert event.data["changes"] == {"payday_alignment": {"from": True, "to": False}}


def test_patch_is_validated(api):
    policy = create(api)

    response = api.patch(f"retry_policies/{policy['id']}", {"steps": {"expired_card": [r(3600)]}})

    assert response.status_code == 400
    assert "steps" in response.json()["error"]["fields"]
    assert RetryPolicy.objects.get(pk=policy["id"]).steps == STEPS


def test_patch_is_default_true_moves_the_default(api):
    old_default = default_id(api)
    policy = create(api)

    response = api.patch(f"retry_policies/{policy['id']}", {"is_default": True})

    assert response.status_code == 200
    defaults = list(RetryPolicy.objects.filter(is_default=True).values_list("pk", flat=True))
    assert defaults == [policy["id"]]
    assert api.get(f"retry_policies/{old_default}").json()["is_default"] is False


def test_patch_is_default_false_on_the_default_is_a_400(api):
    policy_id = default_id(api)

    response = api.patch(f"retry_policies/{policy_id}", {"is_default": False})

    assert response.status_code == 400
    assert "is_default" in response.json()["error"]["fields"]
    assert RetryPolicy.objects.get(pk=policy_id).is_default is True


def test_put_is_not_allowed(api):
    policy = create(api)

    response = api.client.put(
        f"/api/v1/retry_policies/{policy['id']}", policy_data(name="Replaced"), content_type="application/json",
        headers=api.headers,
    )

    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"


# --- Delete -----------------------------------------------------------------------


def test_deleting_the_default_is_a_409(api):
    policy_id = default_id(api)

    response = api.delete(f"retry_policies/{policy_id}")

    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"
    assert RetryPolicy.objects.filter(pk=policy_id).exists()


def test_deleting_another_policy_answers_204(api, org):
    policy = create(api)

    response = api.delete(f"retry_policies/{policy['id']}")

    assert response.status_code == 204
    assert not RetryPolicy.objects.filter(pk=policy["id"]).exists()
    assert AuditEvent.objects.filter(organization=org, action="policy.deleted", target_id=str(policy["id"])).exists()


def test_deleting_a_policy_moves_its_payments_to_the_default(api):
    original_default = default_id(api)
    doomed = create(api, is_default=True)
    # New payments take the default policy, so this one is recovered under "doomed".
    assert api.post("events/payment_failed", report(reference="r1")).status_code == 201
    assert Payment.objects.get(reference="r1").policy_id == doomed["id"]
    api.patch(f"retry_policies/{original_default}", {"is_default": True})

    response = api.delete(f"retry_policies/{doomed['id']}")

    assert response.status_code == 204
    assert Payment.objects.get(reference="r1").policy_id == original_default


# --- Tenancy ----------------------------------------------------------------------


@pytest.fixture
def their_policy(other_api):
    return create(other_api, name="Globex special")


def test_another_organizations_policy_is_a_404_to_get(api, their_policy):
    response = api.get(f"retry_policies/{their_policy['id']}")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_another_organizations_policy_is_a_404_to_patch(api, their_policy):
    response = api.patch(f"retry_policies/{their_policy['id']}", {"steps": {}})

    assert response.status_code == 404
    assert RetryPolicy.objects.get(pk=their_policy["id"]).steps == STEPS


def test_another_organizations_policy_is_a_404_to_delete(api, their_policy):
    response = api.delete(f"retry_policies/{their_policy['id']}")

    assert response.status_code == 404
    assert RetryPolicy.objects.filter(pk=their_policy["id"]).exists()


def test_list_never_includes_another_organizations_policies(api, their_policy):
    names = [p["name"] for p in api.get("retry_policies").json()]

    assert names == ["Default"]


# --- OpenAPI ----------------------------------------------------------------------

NEW_OPERATIONS = {
    "payment_failed_create", "payment_failed_batch_create", "payments_list", "payments_retrieve",
    "payments_recovery_link_create", "payments_retry_now", "payments_cancel", "retry_policies_list",
    "retry_policies_create", "retry_policies_retrieve", "retry_policies_update", "retry_policies_destroy",
}


def _operations(client) -> dict[str, dict]:
    schema = client.get("/api/schema/?format=json").json()
    return {
        op["operationId"]: op
        for item in schema["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }


def test_schema_lists_every_recovery_operation(client):
    assert NEW_OPERATIONS <= set(_operations(client))


@pytest.mark.parametrize(
    ("operation", "success"), [("payment_failed_create", "201"), ("payment_failed_batch_create", "200")]
)
def test_schema_has_request_and_response_examples_for_ingestion(client, operation, success):
    op = _operations(client)[operation]

    (request_example,) = op["requestBody"]["content"]["application/json"]["examples"].values()
    (response_example,) = op["responses"][success]["content"]["application/json"]["examples"].values()
    assert request_example["value"]
    assert response_example["value"]


def test_schema_documents_the_payments_list_filters(client):
    op = _operations(client)["payments_list"]

    names = {p["name"] for p in op["parameters"]}
    assert {"status", "category", "provider", "created_after", "created_before", "cursor", "limit"} <= names


def test_schema_documents_every_409_in_the_error_shape_with_examples(client):
    conflicts = {
        name: op["responses"]["409"] for name, op in _operations(client).items() if "409" in op["responses"]
    }

    assert {
        "payment_failed_create", "payment_failed_batch_create", "payments_recovery_link_create", "payments_retry_now",
        "payments_cancel", "retry_policies_destroy",
    } <= set(conflicts)
    for name, response in conflicts.items():
        content = response["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}, name
        assert content["examples"], name


def test_schema_documents_the_payments_list_400_for_a_bad_filter(client):
    response = _operations(client)["payments_list"]["responses"]["400"]

    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_schema_offers_only_post_on_payment_actions(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]

    for action in ("recovery_link", "retry_now", "cancel"):
        methods = {m for m in paths[f"/api/v1/payments/{{reference}}/{action}"] if m != "parameters"}
        assert methods == {"post"}, action
