"""``python manage.py refresh_analytics [slug ...] [--full]``: bring dashboard figures up to date now."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from analytics.rollups import refresh
from tinko.models import Organization


class Command(BaseCommand):
    help = (
        "Re-roll the dashboard's daily rollups of the given organizations (all without a slug): the days whose "
        "payments changed, or everything with --full (the scheduler does both on its own: every minute, and daily)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="Organization slugs (default: every organization).")
        parser.add_argument("--full", action="store_true", help="Rebuild from scratch instead of re-rolling changed days.")

    def handle(self, *args, slugs, full, **options):
        organizations = Organization.objects.order_by("pk")
        if slugs:
            organizations = organizations.filter(slug__in=slugs)
            missing = set(slugs) - set(organizations.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No organization with the slug(s): {', '.join(sorted(missing))}.")
        for organization in organizations:
            started = time.monotonic()
            days = refresh(organization, full=full)
            what = "busy (another refresh is running)" if days is None else (
                "rebuilt" if days < 0 else f"{days} day{'s' if days != 1 else ''} re-rolled")
            self.stdout.write(f"{organization.slug}: {what} in {time.monotonic() - started:.1f} s")
