"""Seed the demo merchant for local use: ``python manage.py seed_demo``.

Idempotent: a second run finds everything in place and changes nothing.
"""

from __future__ import annotations

import os

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from tinko import services
from tinko.models import Membership, Organization, Role, User

DEMO_ORG_NAME = "Demo Store"
DEMO_ORG_SLUG = "demo"
DEMO_OWNER_EMAIL = "demo@example.com"
DEMO_ADMIN_EMAIL = "admin@example.com"
# Documented in the README; for local use only (the command refuses to run with DEBUG off).
DEFAULT_DEMO_PASSWORD = "tinko-demo-password"


class Command(BaseCommand):
    help = (
        f'Create the demo merchant "{DEMO_ORG_NAME}" (slug {DEMO_ORG_SLUG}) owned by {DEMO_OWNER_EMAIL}, '
        f"with the password from TINKO_DEMO_PASSWORD (default {DEFAULT_DEMO_PASSWORD!r}). Local use only."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true",
            help="Run even with DEBUG off. The demo password is public: never do this in production.",
        )
        parser.add_argument(
            "--with-admin", action="store_true",
            help=f"Also create the superuser {DEMO_ADMIN_EMAIL} with the same password.",
        )

    def handle(self, *args, force: bool, with_admin: bool, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates accounts with a publicly known password, so it only runs in local mode "
                "(DEBUG on). Pass --force to run it anyway; never do that in production."
            )
        password = os.environ.get("TINKO_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD
        try:
            validate_password(password)
        except ValidationError as exc:
            raise CommandError(f"TINKO_DEMO_PASSWORD is too weak: {' '.join(exc.messages)}") from None

        with transaction.atomic():
            owner, owner_created = _ensure_user(DEMO_OWNER_EMAIL, password)
            org, org_created = _ensure_organization(owner)
            admin, admin_created = _ensure_user(DEMO_ADMIN_EMAIL, password, superuser=True) if with_admin else (None, False)

        out = self.stdout
        out.write(f'Organization "{org.name}" (slug {org.slug}): {"created" if org_created else "already there"}')
        self._report_user(owner, owner_created, password)
        if admin is not None:
            self._report_user(admin, admin_created, password)
        out.write(f"Log in at {settings.SITE_URL}{reverse('account_login')}")
        if admin is not None:
            out.write(f"Admin at {settings.SITE_URL}{reverse('admin:index')}")

    def _report_user(self, user: User, created: bool, password: str) -> None:
        role = "superuser" if user.is_superuser else "owner"
        self.stdout.write(f"{role.capitalize()} {user.email}: {'created' if created else 'already there'}")
        if user.check_password(password):
            self.stdout.write(f"  password: {password}  (for local use only)")
        else:
            # Someone changed it since the first run; a seed must not undo that.
            self.stdout.write(f"  password: unchanged, not the demo password (reset it with: manage.py changepassword {user.email})")


def _ensure_user(email: str, password: str, *, superuser: bool = False) -> tuple[User, bool]:
    user = User.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        create = User.objects.create_superuser if superuser else User.objects.create_user
        user = create(email=email, password=password)
    elif superuser and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    # Verified, so mandatory e-mail verification does not stop the demo login.
    address = EmailAddress.objects.filter(user=user, email__iexact=email).first()
    if address is None:
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    elif not (address.verified and address.primary):
        address.verified = address.primary = True
        address.save(update_fields=["verified", "primary"])
    return user, created


def _ensure_organization(owner: User) -> tuple[Organization, bool]:
    org = Organization.objects.filter(slug=DEMO_ORG_SLUG).first()
    if org is None:
        return services.create_organization(name=DEMO_ORG_NAME, slug=DEMO_ORG_SLUG, owner=owner), True
    membership = Membership.objects.filter(organization=org, user=owner).first()
    if membership is None:
        membership = Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
        services.record_audit(organization=org, action="member.added", target=membership, data={"role": Role.OWNER})
    elif membership.role != Role.OWNER:
        old = membership.role
        membership.role = Role.OWNER
        membership.save(update_fields=["role"])
        services.record_audit(
            organization=org, action="member.role_changed", target=membership,
            data={"email": owner.email, "from": old, "to": Role.OWNER},
        )
    return org, False
