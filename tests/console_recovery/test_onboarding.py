"""The "Get started" wizard: resumable, skippable, each step doing what it says."""

from __future__ import annotations

import pytest

from onboarding.models import OnboardingProgress
from recovery.models import Payment

pytestmark = pytest.mark.django_db


def test_wizard_starts_at_the_provider_step(owner_client):
    response = owner_client.get("/console/get-started/")
    assert response.context["step"] == "provider"
    assert b"Use the sandbox" in response.content


def test_choosing_the_sandbox_moves_on_and_is_remembered(owner_client, org):
    response = owner_client.post("/console/get-started/", {"step": "provider", "action": "sandbox"})
    assert response["Location"].endswith("?step=policy")
    progress = OnboardingProgress.objects.get(organization=org)
    assert progress.steps == {"provider": "done"} and progress.provider_choice == "sandbox"
    # Resuming later lands on the first open step.
    assert owner_client.get("/console/get-started/").context["step"] == "policy"


def test_policy_step_previews_only_channels_that_can_send(owner_client, org):
    from recovery.models import RetryPolicy

    # No Twilio in this deployment: the new merchant's policy and its preview use e-mail only.
    assert RetryPolicy.objects.get(organization=org, is_default=True).channels == ["email"]
    steps = owner_client.get("/console/get-started/?step=policy").context["preview"].steps
    messages = [s for s in steps if s.kind == "notification"]
    assert messages and {s.channel for s in messages} == {"email"}


def test_policy_step_previews_the_default_policy(owner_client):
    response = owner_client.get("/console/get-started/?step=policy")
    assert response.context["preview"].steps
    assert b"Use this policy" in response.content


def test_skipping_steps_completes_the_wizard(owner_client, org):
    for step in ("provider", "policy", "branding", "test"):
        owner_client.post("/console/get-started/", {"step": step, "action": "skip"})
    progress = OnboardingProgress.objects.get(organization=org)
    assert set(progress.steps.values()) == {"skipped"} and progress.completed_at is not None


def test_branding_step_saves_through_the_settings_rules(owner_client, org):
    bad = owner_client.post("/console/get-started/", {"step": "branding", "action": "save_branding",
                                                      "accent_color": "red", "logo_url": "http://x.test/l.png"})
    assert bad.status_code == 400
    good = owner_client.post("/console/get-started/", {"step": "branding", "action": "save_branding", "display_name": "Acme Coffee",
                                                       "accent_color": "#112233", "support_email": "help@acme.test"})
    assert good.status_code == 302
    org.refresh_from_db()
    assert org.display_name == "Acme Coffee" and org.support_email == "help@acme.test"


def test_test_failure_arrives_as_a_payment(owner_client, org, owner):
    owner_client.post("/console/get-started/", {"step": "test", "action": "send_test"})
    progress = OnboardingProgress.objects.get(organization=org)
    payment = Payment.objects.get(organization=org, reference=progress.test_reference)
    assert payment.customer.email == owner.email and payment.status == "recovering"
    page = owner_client.get("/console/get-started/?step=test").content.decode()
    assert progress.test_reference in page


def test_viewer_sees_progress_but_takes_no_step(viewer_client, org):
    page = viewer_client.get("/console/get-started/").content.decode()
    assert "Use the sandbox" not in page
    assert viewer_client.post("/console/get-started/", {"step": "test", "action": "send_test"}).status_code == 403
    assert not Payment.objects.filter(organization=org).exists()


def test_unknown_action_is_refused_without_side_effects(owner_client, org):
    response = owner_client.post("/console/get-started/", {"step": "provider", "action": "teleport"})
    assert response.status_code == 400
    assert not OnboardingProgress.objects.get(organization=org).steps
