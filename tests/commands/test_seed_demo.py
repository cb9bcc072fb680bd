"""seed_demo: the local demo merchant, idempotent, never with DEBUG off unless forced."""

import re
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command
from django.test import Client

from tinko.models import AuditEvent, Membership, Organization, Role, User


@pytest.fixture
def local_mode(settings):
    settings.DEBUG = True


def seed(*args):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def printed_password(output, email="demo@example.com"):
    match = re.search(rf"{re.escape(email)}: .*\n  password: (.+?)  \(for local use only\)\n", output)
    assert match, output
    return match.group(1)


def snapshot():
    return {
        "orgs": list(Organization.objects.values_list("slug", "name")),
        "users": list(User.objects.values_list("email", "password", "is_superuser")),
        "memberships": list(Membership.objects.values_list("user__email", "organization__slug", "role")),
        "emails": list(EmailAddress.objects.values_list("email", "verified", "primary")),
        "audit": AuditEvent.objects.count(),
    }


def test_seeds_the_demo_store_and_its_owner(db, local_mode):
    output = seed()

    org = Organization.objects.get()
    assert (org.slug, org.name) == ("demo", "Demo Store")
    owner = User.objects.get()
    assert owner.email == "demo@example.com"
    assert not owner.is_staff
    assert Membership.objects.get().role == Role.OWNER
    assert EmailAddress.objects.filter(user=owner, email="demo@example.com", verified=True, primary=True).exists()
    assert AuditEvent.objects.filter(organization=org, action="organization.created").count() == 1
    assert printed_password(output) == "tinko-demo-password"
    assert "Log in at http://testserver/accounts/login/" in output


def test_running_twice_changes_nothing(db, local_mode):
    seed()
    first = snapshot()

    output = seed()

    assert snapshot() == first
    assert len(first["orgs"]) == len(first["users"]) == len(first["memberships"]) == 1
    assert "already there" in output


def test_login_works_with_the_printed_password(db, local_mode):
    password = printed_password(seed())

    response = Client().post("/accounts/login/", {"login": "demo@example.com", "password": password})

    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_password_comes_from_the_environment(db, local_mode, monkeypatch):
    monkeypatch.setenv("TINKO_DEMO_PASSWORD", "another demo passphrase")

    output = seed()

    assert printed_password(output) == "another demo passphrase"
    assert User.objects.get().check_password("another demo passphrase")


def test_weak_password_from_the_environment_is_refused(db, local_mode, monkeypatch):
    monkeypatch.setenv("TINKO_DEMO_PASSWORD", "demo")

    with pytest.raises(CommandError, match="TINKO_DEMO_PASSWORD is too weak"):
        seed()
    assert not User.objects.exists()


def test_a_changed_password_is_kept_and_not_printed(db, local_mode):
    seed()
    owner = User.objects.get()
    owner.set_password("my own secret passphrase")
    owner.save()

    output = seed()

    owner.refresh_from_db()
    assert owner.check_password("my own secret passphrase")
    assert "tinko-demo-password" not in output
    assert "password: unchanged" in output


def test_refuses_to_run_with_debug_off(db, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="only runs in local mode"):
        seed()
    assert not User.objects.exists()
    assert not Organization.objects.exists()


def test_force_runs_with_debug_off(db, settings):
    settings.DEBUG = False

    seed("--force")

    assert Organization.objects.filter(slug="demo").exists()


def test_no_superuser_unless_asked(db, local_mode):
    seed()
    assert not User.objects.filter(is_superuser=True).exists()
    assert not User.objects.filter(email="admin@example.com").exists()


def test_with_admin_creates_a_superuser_with_the_same_password(db, local_mode):
    output = seed("--with-admin")

    admin = User.objects.get(email="admin@example.com")
    assert admin.is_staff and admin.is_superuser
    assert admin.check_password("tinko-demo-password")
    assert printed_password(output, "admin@example.com") == "tinko-demo-password"
    assert "Admin at http://testserver/admin/" in output
    assert not Membership.objects.filter(user=admin).exists()

    seed("--with-admin")
    assert User.objects.filter(email="admin@example.com").count() == 1


def test_restores_the_owner_membership_if_it_was_removed(db, local_mode):
    seed()
    Membership.objects.all().delete()

    seed()

    membership = Membership.objects.get()
    assert (membership.user.email, membership.role) == ("demo@example.com", Role.OWNER)
    assert AuditEvent.objects.filter(action="member.added", actor_label="system").exists()


def test_seeds_demo_failures_of_each_kind_once(db, local_mode):
    from recovery.models import Payment

    first = seed()
    second = seed()

    payments = Payment.objects.filter(organization__slug="demo", reference__startswith="demo-")
    assert payments.count() == 6
    assert set(payments.values_list("category", flat=True)) == {
        "insufficient_funds", "expired_card", "authentication_required", "processing_error", "fraud_or_stolen",
    }
    # Every one is being recovered; the lost card (demo-1006) with a message asking for another card only.
    assert payments.filter(status="recovering").count() == 6
    lost = payments.get(reference="demo-1006")
    assert list(lost.attempts.values_list("kind", flat=True)) == ["notification"]
    assert "Demo failed payments: 6 recorded, 0 already there" in first
    assert "Demo failed payments: 0 recorded, 6 already there" in second


def test_gives_the_demo_dashboard_a_sample_history_once(db, local_mode):
    from analytics import selectors
    from analytics.rollups import refresh
    from recovery.models import Payment

    seed()
    org = Organization.objects.get(slug="demo")
    sample = Payment.objects.filter(organization=org, reference__startswith="sample-")
    first = sample.count()
    seed()

    assert first == sample.count() == 400
    refresh(org)
    period = selectors.parse_period({"period": "90d"}, org)
    summary = selectors.summary(org, period)
    assert summary and summary[0]["recovered_count"] > 0
    assert selectors.holdout(org, period)["comparison"] is not None


def test_the_demo_has_done_get_started_and_the_console_says_so(db, local_mode):
    from onboarding.models import STEPS, OnboardingProgress

    password = printed_password(seed())
    client = Client()
    client.post("/accounts/login/", {"login": "demo@example.com", "password": password})
    progress = OnboardingProgress.objects.get(organization__slug="demo")

    assert progress.completed_at is not None
    assert all(progress.state(step) == "done" for step in STEPS) and progress.provider_choice == "sandbox"
    assert "Set up recovery" not in client.get("/console/").content.decode()
