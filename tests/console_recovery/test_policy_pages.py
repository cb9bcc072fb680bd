"""The console's Retry policies pages: create, edit, default, overrides, preview; admins only change them."""

from __future__ import annotations

import pytest

from recovery.models import RetryPolicy
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db


def form_data(steps=None, **overrides) -> dict:
    """The policy form as a browser posts it: shared settings plus rows of steps per decline."""
    data = {
        "name": "Gentle", "recovery_window_days": "14", "channels": ["email"],
        "quiet_hours_start": "21:00", "quiet_hours_end": "08:00", "payday_days": "1, 15",
        "category": "insufficient_funds", "timezone": "Asia/Kolkata",
    }
    steps = steps if steps is not None else {
        "insufficient_funds": [("recharge", "12", ""), ("message", "0", ""), ("recharge", "24", "")],
        "expired_card": [("message", "0", ""), ("message", "48", "")],
    }
    for key, rows in steps.items():
        for index, (action, hours, channel) in enumerate(rows):
            data[f"st_{key}_{index}_action"] = action
            data[f"st_{key}_{index}_after_hours"] = hours
            data[f"st_{key}_{index}_channel"] = channel
    data.update(overrides)
    return data


def test_admin_creates_a_policy_of_steps(admin_client, org):
    response = admin_client.post("/console/policies/new/", form_data(st_insufficient_funds_3_action="",
                                                                     st_insufficient_funds_3_after_hours=""))
    assert response.status_code == 302
    policy = RetryPolicy.objects.get(organization=org, name="Gentle")
    assert policy.steps["insufficient_funds"] == [
        {"action": "recharge", "after_seconds": 12 * 3600},
        {"action": "message", "after_seconds": 0, "channel": ""},
        {"action": "recharge", "after_seconds": 24 * 3600},
    ]
    assert policy.steps["expired_card"] == [{"action": "message", "after_seconds": 0, "channel": ""},
                                            {"action": "message", "after_seconds": 48 * 3600, "channel": ""}]
    # Categories without rows get no action.
    assert policy.steps["do_not_retry"] == []
    assert not policy.is_default
    assert AuditEvent.objects.filter(action="policy.created", target_id=str(policy.pk)).exists()


def test_the_new_policy_page_offers_tinkos_default_steps(admin_client, org):
    page = admin_client.get("/console/policies/new/")
    initial = page.context["form"].initial
    assert initial["st_card_declined_0_action"] == "message"
    assert initial["st_card_declined_1_action"] == "recharge"
    body = page.content.decode()
    assert "Lost, stolen or picked-up card" in body
    assert "Suspected fraud never gets a re-charge or a message" in body


def test_admin_sets_a_holdout_share_and_more_than_half_is_refused(admin_client, org):
    assert admin_client.post("/console/policies/new/", form_data(holdout_percent="10")).status_code == 302
    assert RetryPolicy.objects.get(organization=org, name="Gentle").holdout_percent == 10
    response = admin_client.post("/console/policies/new/", form_data(name="Greedy", holdout_percent="60"))
    assert response.status_code == 400
    assert not RetryPolicy.objects.filter(name="Greedy").exists()


def test_invalid_steps_are_explained_and_nothing_is_saved(admin_client, org):
    response = admin_client.post("/console/policies/new/", form_data(steps={"expired_card": [("recharge", "1", "")]}))
    assert response.status_code == 400
    assert "Expired card: Step 1: expired_card declines are never re-charged" in response.content.decode()
    response = admin_client.post("/console/policies/new/", form_data(steps={"card_declined": [("recharge", "0", "")]}))
    assert response.status_code == 400
    assert "Step 1: after_seconds must be between 60" in response.content.decode()
    assert not RetryPolicy.objects.filter(name="Gentle").exists()


def test_edit_shows_the_steps_and_records_changes(admin_client, org):
    policy = RetryPolicy.objects.get(organization=org, is_default=True)
    page = admin_client.get(f"/console/policies/{policy.pk}/")
    assert page.context["form"].initial["st_insufficient_funds_0_action"] == "recharge"
    assert page.context["form"].initial["st_insufficient_funds_0_after_hours"] == 24
    response = admin_client.post(f"/console/policies/{policy.pk}/", form_data(name=policy.name, is_default="on"))
    assert response.status_code == 302
    policy.refresh_from_db()
    assert len(policy.steps["insufficient_funds"]) == 3 and policy.is_default
    event = AuditEvent.objects.filter(action="policy.updated").latest("created_at")
    assert event.data["changes"]["steps"]["to"]["insufficient_funds"][0] == {"action": "recharge", "after_seconds": 43200}


def test_making_another_policy_default_moves_the_flag(admin_client, org):
    old = RetryPolicy.objects.get(organization=org, is_default=True)
    other = RetryPolicy.objects.create(organization=org, name="Other")
    admin_client.post(f"/console/policies/{other.pk}/default/")
    assert RetryPolicy.objects.get(organization=org, is_default=True) == other
    old.refresh_from_db()
    assert not old.is_default


def test_the_default_cannot_be_deleted(admin_client, org):
    default = RetryPolicy.objects.get(organization=org, is_default=True)
    response = admin_client.post(f"/console/policies/{default.pk}/delete/", follow=True)
    assert b"cannot be deleted" in response.content
    assert RetryPolicy.objects.filter(pk=default.pk).exists()


def test_preview_shows_the_schedule_in_the_customers_time_zone(admin_client, org):
    response = admin_client.get("/console/policies/preview/", form_data(payday_alignment=""))
    body = response.content.decode()
    steps = response.context["preview"].steps
    assert [s.kind for s in steps] == ["auto_retry", "notification", "auto_retry"]
    assert steps[0].when.tzinfo.key == "Asia/Kolkata"
    assert "customer in Asia/Kolkata" in body
    assert "Message by Email" in body  # between the re-charges
    assert f"{steps[0].when:%H:%M}" in body


def test_preview_follows_unsaved_values(admin_client, org):
    one = admin_client.get("/console/policies/preview/", form_data(
        steps={"insufficient_funds": [("recharge", "1", "")]})).context["preview"]
    assert [s.kind for s in one.steps] == ["auto_retry"]
    bad = admin_client.get("/console/policies/preview/", form_data(timezone="Mars/Olympus")).content.decode()
    assert "Unknown time zone" in bad


def test_preview_of_a_lost_card_asks_for_another_card_and_fraud_gets_nothing(admin_client, org):
    data = form_data(steps={"lost_or_stolen": [("message", "0", "")]}, category="lost_or_stolen")
    lost = admin_client.get("/console/policies/preview/", data).context["preview"]
    assert [s.kind for s in lost.steps] == ["notification"]
    assert "asking for another card" in lost.steps[0].reason
    fraud = admin_client.get("/console/policies/preview/", {**data, "category": "fraud_or_stolen"}).context["preview"]
    assert fraud.steps == []
    assert "suspected fraud never gets a re-charge or a message" in fraud.end


def test_preview_uses_only_channels_that_can_send(admin_client, org):
    # No Twilio here: a policy naming SMS first still previews e-mail only.
    preview = admin_client.get("/console/policies/preview/", form_data(
        channels=["sms", "email"], steps={"expired_card": [("message", "0", "sms")]}, category="expired_card",
    )).context["preview"]
    assert [s.channel for s in preview.steps] == ["email"]


def test_viewer_reads_but_cannot_change(viewer_client, org):
    policy = RetryPolicy.objects.get(organization=org, is_default=True)
    page = viewer_client.get(f"/console/policies/{policy.pk}/").content.decode()
    assert "Save policy" not in page and "<fieldset disabled>" in page
    assert "New policy" not in viewer_client.get("/console/policies/").content.decode()
    assert viewer_client.post(f"/console/policies/{policy.pk}/", form_data(name="Hacked")).status_code == 403
    assert viewer_client.post("/console/policies/new/", form_data()).status_code == 403
    assert viewer_client.post(f"/console/policies/{policy.pk}/delete/").status_code == 403
    policy.refresh_from_db()
    assert policy.name != "Hacked"


def test_member_cannot_configure(member_client, org):
    assert member_client.post("/console/policies/new/", form_data()).status_code == 403


def test_another_organizations_policy_is_404(admin_client, other_org):
    theirs = RetryPolicy.objects.get(organization=other_org, is_default=True)
    assert admin_client.get(f"/console/policies/{theirs.pk}/").status_code == 404
    assert admin_client.post(f"/console/policies/{theirs.pk}/default/").status_code == 404
