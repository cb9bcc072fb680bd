"""``python manage.py generate_sample_data <org-slug> --payments N``: a realistic synthetic history (analytics/synthetic.py)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analytics import synthetic
from analytics.rollups import refresh
from recovery.models import Payment
from tinko.models import Organization


class Command(BaseCommand):
    help = (
        "Add synthetic failed payments (with their failure events, recovery attempts and recoveries) to an "
        "organization, for demos and benchmarks. Sample payments have references starting with 'sample-'. "
        "Local mode only unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("organization", help="The organization's slug.")
        parser.add_argument("--payments", type=int, default=1000, help="How many payments (default 1000).")
        parser.add_argument("--days", type=int, default=90, help="Spread their first failures over this many days up to now (default 90).")
        parser.add_argument("--holdout-percent", type=int, default=0, help="Share held out of recovery, 0-50 (default 0).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed; the same seed gives the same data.")
        parser.add_argument("--force", action="store_true", help="Run with DEBUG off. Never in production: the data is fake.")

    def handle(self, *args, organization, payments, days, holdout_percent, seed, force, **options):
        if not settings.DEBUG and not force:
            raise CommandError("generate_sample_data adds fake payments, so it only runs in local mode (DEBUG on); pass --force to run it anyway.")
        if payments < 1 or payments > 5_000_000:
            raise CommandError("--payments must be between 1 and 5,000,000.")
        if days < 1 or days > 730:
            raise CommandError("--days must be between 1 and 730.")
        if not 0 <= holdout_percent <= 50:
            raise CommandError("--holdout-percent must be between 0 and 50.")
        org = Organization.objects.filter(slug=organization).first()
        if org is None:
            raise CommandError(f"No organization with the slug {organization!r}.")
        already = Payment.objects.filter(organization=org, reference__startswith=synthetic.PREFIX).count()
        started = time.monotonic()
        counts = synthetic.generate(organization=org, payments=payments, days=days, seed=seed + already,
                                    holdout_percent=holdout_percent, start_number=already + 1)
        loaded = time.monotonic() - started
        refresh(org)
        self.stdout.write(
            f"{org.name}: {counts['payments']:,} payments, {counts['events']:,} failure events, "
            f"{counts['attempts']:,} attempts in {loaded:.1f} s; dashboard figures updated in "
            f"{time.monotonic() - started - loaded:.1f} s."
        )
