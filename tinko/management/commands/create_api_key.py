"""``python manage.py create_api_key <org-slug> <name>``: print a new key, and nothing else, on stdout.

Made for scripts: ``KEY=$(python manage.py create_api_key demo "CI")``. Errors go
to stderr with a non-zero exit. The key is audited as created by "system".
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tinko import services
from tinko.models import Organization


class Command(BaseCommand):
    help = "Create an API key for an organization and print it (only the key) on stdout. It is shown once."

    def add_arguments(self, parser):
        parser.add_argument("org_slug", help="The organization's slug, e.g. demo.")
        parser.add_argument("name", help="What the key is for, e.g. 'Production server'.")

    def handle(self, *args, org_slug: str, name: str, **options):
        organization = Organization.objects.filter(slug=org_slug).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {org_slug!r}.")
        try:
            _key, plaintext = services.create_api_key(organization=organization, name=name, created_by=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(plaintext)
