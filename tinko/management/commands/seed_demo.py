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

        recorded = _seed_failures(org)
        sample = _seed_sample_history(org)
        _complete_onboarding(org, owner)

        out = self.stdout
        out.write(f'Organization "{org.name}" (slug {org.slug}): {"created" if org_created else "already there"}')
        out.write(
            f"Demo failed payments: {recorded} recorded, {len(DEMO_FAILURES) - recorded} already there "
            "(sandbox cards; see payments/sandbox/README.md)"
        )
        out.write(f"Sample history for the dashboard: {sample} payments added" if sample else "Sample history: already there")
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


# (reference, amount in cents, sandbox card last4, brand, decline code, customer name):
# one of each kind of recovery a merchant sees.
DEMO_FAILURES = [
    ("demo-1001", 2900, "9996", "visa", "insufficient_funds", "Ada Lovelace"),
    ("demo-1002", 4900, "9995", "visa", "insufficient_funds", "Grace Hopper"),
    ("demo-1003", 1500, "0069", "visa", "expired_card", "Alan Turing"),
    ("demo-1004", 9900, "3155", "visa", "authentication_required", "Katherine Johnson"),
    ("demo-1005", 2500, "4242", "visa", "processing_error", "Edsger Dijkstra"),
    ("demo-1006", 7500, "9987", "visa", "lost_card", "Barbara Liskov"),
]


def _seed_failures(org: Organization) -> int:
    """Report the demo failures through the ingestion service; their event ids make a re-run a no-op."""
    from recovery.ingestion import record_failures
    from recovery.reports import parse_report

    reports = [
        parse_report({
            "event_id": f"{reference}-evt",
            "reference": reference,
            "amount": amount,
            "currency": "USD",
            "provider": "sandbox",
            "description": "Demo subscription",
            "failure": {"code": "card_declined", "decline_code": decline_code},
            "customer": {
                "id": f"cus_{reference}",
                "email": f"{name.split()[0].lower()}@example.com",
                "name": name,
            },
            "payment_method": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2030},
        })
        for reference, amount, last4, brand, decline_code, name in DEMO_FAILURES
    ]
    results = record_failures(organization=org, reports=reports)
    return sum(not r.duplicate for r in results)


# Enough for every panel of the dashboard to show something (including the holdout comparison).
SAMPLE_PAYMENTS = 400


def _seed_sample_history(org: Organization) -> int:
    """Three months of sample payments (analytics/synthetic.py) once, so a new user's dashboard is alive."""
    from analytics import synthetic
    from recovery.models import Payment

    if Payment.objects.filter(organization=org, reference__startswith=synthetic.PREFIX).exists():
        return 0
    return synthetic.generate(organization=org, payments=SAMPLE_PAYMENTS, days=90, seed=7, holdout_percent=10)["payments"]


def _complete_onboarding(org: Organization, owner: User) -> None:
    """The demo has what Get started sets up (sandbox, a policy, branding, failures): say so, as for a real merchant.

    Only steps not yet recorded are marked, so a re-run changes nothing.
    """
    from onboarding.models import STEPS, Step, StepState
    from onboarding.services import mark_step, progress_for
    from recovery.ingestion import default_policy

    default_policy(org)  # what the policy step chooses; ingestion made it already
    if not (org.display_name or org.support_email):
        services.update_organization(organization=org, actor=owner, display_name=DEMO_ORG_NAME,
                                     support_email="support@example.com")
    progress = progress_for(org)
    for step in STEPS:
        if not progress.state(step):
            fields = {"provider_choice": "sandbox"} if step == Step.PROVIDER else {}
            progress = mark_step(organization=org, step=step, state=StepState.DONE, actor=owner, **fields)


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
