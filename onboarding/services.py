"""Writes of the onboarding wizard. Each step records itself; the wizard resumes at the first open step."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from onboarding.models import STEPS, OnboardingProgress, StepState
from recovery.ingestion import record_failures
from recovery.reports import parse_report
from tinko.services import record_audit


def progress_for(organization) -> OnboardingProgress:
    progress, _ = OnboardingProgress.objects.get_or_create(organization=organization)
    return progress


@transaction.atomic
def mark_step(*, organization, step: str, state: str, actor=None, request=None, **fields) -> OnboardingProgress:
    """Record ``step`` as done or skipped (idempotent); ``fields`` set other columns (e.g. provider_choice)."""
    if step not in STEPS or state not in StepState.values:
        raise ValueError(f"unknown onboarding step or state: {step!r} {state!r}")
    progress, _ = OnboardingProgress.objects.select_for_update().get_or_create(organization=organization)
    progress.steps = {**progress.steps, step: state}
    for name, value in fields.items():
        setattr(progress, name, value)
    now = timezone.now()
    progress.updated_at = now
    if progress.completed_at is None and not progress.next_step():
        progress.completed_at = now
    progress.save()
    record_audit(organization=organization, action=f"onboarding.{state}", actor=actor, request=request,
                 data={"step": step, **{k: str(v) for k, v in fields.items()}})
    return progress


def send_test_failure(*, organization, email: str) -> str:
    """Report a sandbox failure for this organization through the real ingestion path; returns its reference.

    The card (9996) declines for insufficient funds and recovers on the second
    re-charge, so the merchant sees a whole recovery play out.
    """
    reference = f"test-{secrets.token_hex(4)}"
    report = parse_report(
        {
            "event_id": f"evt_{reference}",
            "reference": reference,
            "amount": 1999,
            "currency": organization.default_currency,
            "provider": "sandbox",
            "description": "Test payment from Get started",
            "failure": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."},
            "customer": {"email": email, "name": "Test Customer", "timezone": organization.timezone},
            "payment_method": {"brand": "visa", "last4": "9996", "exp_month": 12, "exp_year": timezone.now().year + 3},
            "metadata": {"source": "get-started"},
        }
    )
    record_failures(organization=organization, reports=[report], source="api")
    return reference
