"""The console's Retry policies pages: create, edit, default, overrides, preview; admins only change them."""

from __future__ import annotations

import pytest

from recovery.models import RetryPolicy
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db


def form_data(**overrides) -> dict:
    data = {
        "name": "Gentle", "max_retries": "3", "initial_delay_hours": "12", "backoff_multiplier": "2",
        "max_delay_hours": "72", "recovery_window_days": "14", "channels": ["email"], "max_notifications": "2",
        "notification_interval_hours": "48", "quiet_hours_start": "21:00", "quiet_hours_end": "08:00",
        "payday_days": "1, 15", "notify_on_hard_decline": "on",
        "category": "insufficient_funds", "timezone": "Asia/Kolkata",
    }
    data.update(overrides)
    return data


def test_admin_creates_a_policy_with_a_category_override(admin_client, org):
    response = admin_client.post("/console/policies/new/", form_data(ov_processing_error_max_retries="5",
                                                                     ov_processing_error_initial_delay_hours="0.5"))
    assert response.status_code == 302
    policy = RetryPolicy.objects.get(organization=org, name="Gentle")
    assert policy.initial_delay_seconds == 12 * 3600 and policy.max_delay_seconds == 72 * 3600
    assert policy.category_overrides == {"processing_error": {"max_retries": 5, "initial_delay_seconds": 1800}}
    assert not policy.is_default
    assert AuditEvent.objects.filter(action="policy.created", target_id=str(policy.pk)).exists()


def test_admin_sets_a_holdout_share_and_more_than_half_is_refused(admin_client, org):
    assert admin_client.post("/console/policies/new/", form_data(holdout_percent="10")).status_code == 302
    assert RetryPolicy.objects.get(organization=org, name="Gentle").holdout_percent == 10
    response = admin_client.post("/console/policies/new/", form_data(name="Greedy", holdout_percent="60"))
    assert response.status_code == 400
    assert not RetryPolicy.objects.filter(name="Greedy").exists()


def test_invalid_values_are_explained_and_nothing_is_saved(admin_client, org):
    response = admin_client.post("/console/policies/new/", form_data(max_delay_hours="1"))
    assert response.status_code == 400
    assert "Must not be shorter than initial_delay (hours)." in response.content.decode()
    response = admin_client.post("/console/policies/new/", form_data(ov_card_declined_max_retries="99"))
    assert response.status_code == 400
    assert "card_declined: max_retries must be between 0 and 20." in response.content.decode()
    assert not RetryPolicy.objects.filter(name="Gentle").exists()


def test_edit_keeps_overrides_and_records_changes(admin_client, org):
    policy = RetryPolicy.objects.get(organization=org, is_default=True)
    page = admin_client.get(f"/console/policies/{policy.pk}/")
    assert page.context["form"].initial["ov_processing_error_max_retries"] == 3
    response = admin_client.post(f"/console/policies/{policy.pk}/", form_data(name=policy.name, max_retries="6", is_default="on",
                                                                             ov_processing_error_max_retries="3"))
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.max_retries == 6 and policy.is_default
    assert policy.category_overrides == {"processing_error": {"max_retries": 3}}
    event = AuditEvent.objects.filter(action="policy.updated").latest("created_at")
    assert event.data["changes"]["max_retries"] == {"from": 4, "to": 6}


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
    assert [s.kind for s in steps[:3]] == ["auto_retry"] * 3
    assert steps[0].when.tzinfo.key == "Asia/Kolkata"
    assert "customer in Asia/Kolkata" in body
    assert "Message by Email" in body  # after the retries, the messages
    assert f"{steps[0].when:%H:%M}" in body


def test_preview_follows_unsaved_values(admin_client, org):
    one = admin_client.get("/console/policies/preview/", form_data(max_retries="1")).context["preview"]
    assert sum(s.kind == "auto_retry" for s in one.steps) == 1
    bad = admin_client.get("/console/policies/preview/", form_data(timezone="Mars/Olympus")).content.decode()
    assert "Unknown time zone" in bad


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
