from django.contrib import admin

from onboarding.models import OnboardingProgress


@admin.register(OnboardingProgress)
class OnboardingProgressAdmin(admin.ModelAdmin):
    list_display = ["organization", "steps", "provider_choice", "completed_at", "updated_at"]
    readonly_fields = ["organization"]
