"""Where an organization is in its "Get started" wizard, so it can stop and resume."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from tinko.models import Organization


class Step(models.TextChoices):
    PROVIDER = "provider", _("Connect a payment provider")
    POLICY = "policy", _("Choose a retry policy")
    BRANDING = "branding", _("Brand and sender")
    TEST = "test", _("Send a test failure")


STEPS = [Step.PROVIDER, Step.POLICY, Step.BRANDING, Step.TEST]


class StepState(models.TextChoices):
    DONE = "done", _("Done")
    SKIPPED = "skipped", _("Skipped")


class OnboardingProgress(models.Model):
    """One per organization. ``steps`` maps a step to "done" or "skipped"; missing means still to do."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="onboarding")
    steps = models.JSONField(default=dict, blank=True)
    # What the merchant chose on the provider step ("sandbox", or "provider" when they went to connect one).
    provider_choice = models.CharField(max_length=20, blank=True)
    # The reference of the last test failure sent from the wizard, to show it arriving.
    test_reference = models.CharField(max_length=200, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "onboarding progress"

    def __str__(self):
        return f"onboarding of {self.organization_id}: {self.steps}"

    def state(self, step: str) -> str:
        return self.steps.get(step, "")

    def next_step(self) -> str:
        """The first step neither done nor skipped ("" when none is left)."""
        return next((s.value for s in STEPS if not self.state(s)), "")
