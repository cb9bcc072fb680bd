from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    """The new organization's "Get started" wizard: provider, policy, branding, a test failure."""

    name = "onboarding"
    default_auto_field = "django.db.models.BigAutoField"
