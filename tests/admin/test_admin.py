"""Django admin for staff: every model browsable, secrets never shown, append-only audit."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.admin.sites import site
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tests.accounts.conftest import current_totp, password_login, signed_in_user_id
from tests.conftest import PASSWORD, login, make_user
from tinko import services
from tinko.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Role, User


@pytest.fixture
def superuser(db):
    user = make_user("staff@tinko.test")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def staff_client(superuser):
    return login(superuser)


@pytest.fixture
def invitation(org, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        invitation, _token = services.invite_member(
            organization=org, email="new@acme.test", role="member", invited_by=Membership.objects.get(user=owner, organization=org)
        )
    return invitation


@pytest.fixture
def every_model(org, owner, api_key, invitation, other_org):
    """At least one row of every tinko model."""
    key, _plaintext = api_key
    return {
        User: owner,
        Organization: org,
        Membership: Membership.objects.get(user=owner, organization=org),
        Invitation: invitation,
        ApiKey: key,
        AuditEvent: AuditEvent.objects.filter(organization=org).first(),
    }


def admin_url(obj_or_model, view, *args):
    meta = obj_or_model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("app", ["tinko", "payments", "recovery"])
def test_every_model_is_registered(app):
    from django.apps import apps

    for model in apps.get_app_config(app).get_models():
        assert site.is_registered(model), model


@pytest.mark.parametrize("model", [User, Organization, Membership, Invitation, ApiKey, AuditEvent], ids=lambda m: m.__name__)
def test_changelist_and_change_page_load(staff_client, every_model, model):
    obj = every_model[model]

    assert staff_client.get(admin_url(model, "changelist")).status_code == 200
    assert staff_client.get(admin_url(obj, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize(
    ("model", "query", "expected"),
    [
        (User, "owner@acme", "owner@acme.test"),
        (Organization, "Acme", "Acme"),
        (Membership, "owner@acme", "owner@acme.test"),
        (Invitation, "new@acme", "new@acme.test"),
        (ApiKey, "Test key", "Test key"),
        (AuditEvent, "apikey.created", "apikey.created"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_search_finds_the_row(staff_client, every_model, model, query, expected):
    response = staff_client.get(admin_url(model, "changelist"), {"q": query})

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1
    assert expected in response.content.decode()


def test_search_leaves_out_rows_that_do_not_match(staff_client, every_model):
    response = staff_client.get(admin_url(Organization, "changelist"), {"q": "Globex"})
    assert [o.name for o in response.context["cl"].result_list] == ["Globex"]


def test_user_add_page_asks_for_email_not_username(staff_client):
    response = staff_client.get(admin_url(User, "add"))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "email" in form.fields
    assert "username" not in form.fields


def test_staff_can_create_a_user_with_an_email(staff_client):
    response = staff_client.post(
        admin_url(User, "add"),
        {"email": "new.staff@tinko.test", "usable_password": "true", "password1": "a long enough passphrase 9", "password2": "a long enough passphrase 9"},
    )

    assert response.status_code == 302
    user = User.objects.get(email="new.staff@tinko.test")
    assert user.check_password("a long enough passphrase 9")


def test_user_add_refuses_an_email_that_differs_only_in_case(staff_client, owner):
    response = staff_client.post(
        admin_url(User, "add"),
        {"email": "OWNER@acme.test", "usable_password": "true", "password1": "a long enough passphrase 9", "password2": "a long enough passphrase 9"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["email"] == ["A user with this e-mail address already exists."]


def test_staff_can_change_a_user(staff_client, owner):
    response = staff_client.post(
        admin_url(owner, "change", owner.pk),
        {
            "email": owner.email, "name": "Olivia Owner", "is_active": "on",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    owner.refresh_from_db()
    assert owner.name == "Olivia Owner"


def test_organization_page_lists_its_members_inline(staff_client, org, owner):
    response = staff_client.get(admin_url(org, "change", org.pk))
    inline_models = [formset.formset.model for formset in response.context["inline_admin_formsets"]]
    assert Membership in inline_models
    assert owner.email in response.content.decode()


def test_api_key_hash_never_appears(staff_client, org, api_key):
    key, plaintext = api_key
    secret = plaintext.split("_", 2)[2]
    pages = [
        admin_url(ApiKey, "changelist"),
        admin_url(key, "change", key.pk),
        admin_url(org, "change", org.pk),  # the keys inline
        admin_url(AuditEvent, "changelist"),
    ]
    for url in pages:
        html = staff_client.get(url).content.decode()
        assert key.key_hash not in html, url
        assert secret not in html, url
        assert key.display_prefix in html, url


def test_invitation_token_hash_never_appears(staff_client, invitation):
    for url in (admin_url(Invitation, "changelist"), admin_url(invitation, "change", invitation.pk)):
        html = staff_client.get(url).content.decode()
        assert invitation.token_hash not in html, url
        assert invitation.email in html


def test_api_key_add_is_forbidden(staff_client):
    assert staff_client.get(admin_url(ApiKey, "add")).status_code == 403
    assert staff_client.post(admin_url(ApiKey, "add"), {"name": "sneaky"}).status_code == 403
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_invitation_add_is_forbidden(staff_client):
    assert staff_client.get(admin_url(Invitation, "add")).status_code == 403


def test_api_key_page_is_read_only(staff_client, api_key):
    key, _plaintext = api_key
    response = staff_client.post(admin_url(key, "change", key.pk), {"name": "renamed"})
    assert response.status_code == 403
    key.refresh_from_db()
    assert key.name == "Test key"


def test_revoke_action_revokes_and_audits(staff_client, superuser, api_key):
    key, plaintext = api_key

    response = staff_client.post(
        admin_url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True
    )

    assert response.status_code == 200
    assert "Revoked 1 API key." in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    event = AuditEvent.objects.get(action="apikey.revoked")
    assert event.actor_user == superuser
    assert event.target_id == str(key.pk)
    assert event.ip_address == "127.0.0.1"
    # The revoked key no longer opens the API.
    assert staff_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 401


def test_revoking_an_already_revoked_key_adds_no_audit_event(staff_client, superuser, api_key):
    key, _plaintext = api_key
    services.revoke_api_key(api_key=key, actor=superuser)

    staff_client.post(admin_url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]})

    assert AuditEvent.objects.filter(action="apikey.revoked").count() == 1


def test_revoke_invitation_action(staff_client, superuser, invitation):
    staff_client.post(admin_url(Invitation, "changelist"), {"action": "revoke_invitations", "_selected_action": [invitation.pk]})

    invitation.refresh_from_db()
    assert invitation.status == "revoked"
    assert AuditEvent.objects.filter(action="invitation.revoked", actor_user=superuser).exists()


def test_api_keys_cannot_be_deleted(staff_client, api_key):
    key, _plaintext = api_key
    assert staff_client.post(admin_url(key, "delete", key.pk), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_audit_event_cannot_be_added_changed_or_deleted(staff_client, org):
    event = AuditEvent.objects.filter(organization=org).first()
    original = (event.action, event.actor_label)

    assert staff_client.get(admin_url(AuditEvent, "add")).status_code == 403
    assert staff_client.post(admin_url(event, "change", event.pk), {"action": "forged", "actor_label": "nobody"}).status_code == 403
    assert staff_client.post(admin_url(event, "delete", event.pk), {"post": "yes"}).status_code == 403
    # Bulk deletion is not offered either.
    staff_client.post(admin_url(AuditEvent, "changelist"), {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})

    event.refresh_from_db()
    assert (event.action, event.actor_label) == original


def test_audit_event_page_has_no_save_or_delete_buttons(staff_client, org):
    event = AuditEvent.objects.filter(organization=org).first()
    html = staff_client.get(admin_url(event, "change", event.pk)).content.decode()
    assert 'name="_save"' not in html
    assert "deletelink" not in html


def test_outbound_email_is_listed_without_its_body(staff_client, db, django_capture_on_commit_callbacks):
    from tinko.mail import queue_email
    from tinko.models import OutboundEmail

    with django_capture_on_commit_callbacks():
        email = queue_email(subject="Reset your password", body="https://tinko.test/reset/live-token", to=["a@acme.test"])
    stored = OutboundEmail.objects.get(pk=email.pk)

    for url in (admin_url(OutboundEmail, "changelist"), admin_url(stored, "change", stored.pk)):
        response = staff_client.get(url)
        html = response.content.decode()
        assert response.status_code == 200
        assert "Reset your password" in html
        assert "live-token" not in html
        assert stored.body_encrypted not in html
    assert staff_client.get(admin_url(OutboundEmail, "changelist"), {"q": "a@acme"}).context["cl"].result_count == 1
    assert staff_client.post(admin_url(stored, "change", stored.pk), {"subject": "changed"}).status_code == 403
    assert staff_client.post(admin_url(stored, "delete", stored.pk), {"post": "yes"}).status_code == 403


def test_mfa_authenticator_secret_is_not_shown(staff_client, owner):
    authenticator = Authenticator.objects.create(
        user=owner, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXPSECRETVALUE"}
    )

    for url in (admin_url(Authenticator, "changelist"), admin_url(authenticator, "change", authenticator.pk)):
        response = staff_client.get(url)
        assert response.status_code == 200
        assert "JBSWY3DPEHPK3PXPSECRETVALUE" not in response.content.decode()


def test_non_staff_user_cannot_open_the_admin(owner_client):
    response = owner_client.get(admin_url(ApiKey, "changelist"), follow=True)

    # Refused outright: no second login form to try a staff password in.
    assert response.status_code == 403
    assert response.redirect_chain[-1][0].startswith("/admin/login/")


# --- Signing in: through allauth, never Django's password-only form ----------------------------


def test_anonymous_admin_visit_ends_at_the_tinko_login(client, db):
    response = client.get("/admin/", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/accounts/login/?next=%2Fadmin%2F"
    assert response.request["PATH_INFO"] == "/accounts/login/"


def test_admin_password_form_signs_nobody_in(client, superuser):
    response = client.post("/admin/login/?next=/admin/", {"username": superuser.email, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    assert signed_in_user_id(client) is None
    assert client.get("/admin/").status_code == 302


def test_staff_with_totp_reach_the_admin_only_after_the_code(superuser):
    secret = generate_totp_secret()
    TOTP.activate(superuser, secret)

    # Django's own admin form would have taken the password alone.
    browser = Client()
    browser.post("/admin/login/", {"username": superuser.email, "password": PASSWORD})
    assert signed_in_user_id(browser) is None

    browser, response = password_login(superuser.email)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert signed_in_user_id(browser) is None
    # The admin sends the half-signed-in browser back to allauth, which asks for the code.
    admin_page = browser.get("/admin/", follow=True)
    assert admin_page.request["PATH_INFO"] == "/accounts/2fa/authenticate/"

    browser.post("/accounts/2fa/authenticate/", {"code": current_totp(secret)})

    assert signed_in_user_id(browser) == str(superuser.pk)
    assert browser.get("/admin/").status_code == 200


# --- Memberships: read-only, team changes go through the console --------------------------


def test_memberships_cannot_be_added_changed_or_deleted(staff_client, org, owner, member):
    membership = Membership.objects.get(user=owner, organization=org)

    assert staff_client.get(admin_url(Membership, "add")).status_code == 403
    assert staff_client.post(
        admin_url(Membership, "add"), {"user": member.pk, "organization": org.pk, "role": "owner"}
    ).status_code == 403
    assert staff_client.post(admin_url(membership, "change", membership.pk), {"role": "viewer"}).status_code == 403
    assert staff_client.post(admin_url(membership, "delete", membership.pk), {"post": "yes"}).status_code == 403
    staff_client.post(
        admin_url(Membership, "changelist"), {"action": "delete_selected", "_selected_action": [membership.pk], "post": "yes"}
    )

    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert Membership.objects.filter(user=member, organization=org, role=Role.MEMBER).count() == 1


def test_membership_page_has_no_save_or_delete_buttons(staff_client, org, owner):
    membership = Membership.objects.get(user=owner, organization=org)
    html = staff_client.get(admin_url(membership, "change", membership.pk)).content.decode()
    assert 'name="_save"' not in html
    assert "deletelink" not in html


def test_organization_form_cannot_demote_or_remove_its_owner(staff_client, org, owner):
    membership = Membership.objects.get(user=owner, organization=org)
    events = AuditEvent.objects.count()

    response = staff_client.post(
        admin_url(org, "change", org.pk),
        {
            "name": org.name, "slug": org.slug, "timezone": org.timezone, "default_currency": org.default_currency,
            "accent_color": org.accent_color, "display_name": "", "logo_url": "", "support_email": "",
            "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": membership.pk, "memberships-0-organization": org.pk,
            "memberships-0-user": owner.pk, "memberships-0-role": "viewer", "memberships-0-DELETE": "on",
            "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert AuditEvent.objects.count() == events


def test_user_form_cannot_change_their_roles(staff_client, org, owner, member):
    membership = Membership.objects.get(user=member, organization=org)

    response = staff_client.post(
        admin_url(member, "change", member.pk),
        {
            "email": member.email, "name": "", "is_active": "on",
            "memberships-TOTAL_FORMS": "2", "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": membership.pk, "memberships-0-user": member.pk,
            "memberships-0-organization": org.pk, "memberships-0-role": "owner",
            # An extra row: a membership in an organization the user never joined.
            "memberships-1-user": member.pk, "memberships-1-organization": org.pk, "memberships-1-role": "owner",
        },
    )

    assert response.status_code == 302
    assert list(Membership.objects.filter(user=member).values_list("role", flat=True)) == [Role.MEMBER]


def test_staff_can_rename_an_organization(staff_client, org, owner, api_key):
    membership = Membership.objects.get(user=owner, organization=org)
    key, _plaintext = api_key
    response = staff_client.post(
        admin_url(org, "change", org.pk),
        {
            "name": "Acme Corp", "slug": org.slug, "timezone": org.timezone, "default_currency": org.default_currency,
            "accent_color": org.accent_color, "display_name": "", "logo_url": "", "support_email": "",
            "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": membership.pk, "memberships-0-organization": org.pk,
            "memberships-0-user": owner.pk, "memberships-0-role": "owner",
            "api_keys-TOTAL_FORMS": "1", "api_keys-INITIAL_FORMS": "1",
            "api_keys-0-id": key.pk, "api_keys-0-organization": org.pk,
        },
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    org.refresh_from_db()
    assert org.name == "Acme Corp"


def test_organizations_cannot_be_deleted_in_the_admin(staff_client, org):
    # Deleting a merchant would take its append-only audit log with it.
    assert staff_client.post(admin_url(org, "delete", org.pk), {"post": "yes"}).status_code == 403
    assert Organization.objects.filter(pk=org.pk).exists()


def _second_owner(org, owner, user):
    services.change_role(
        membership=Membership.objects.get(user=user, organization=org), role=Role.OWNER,
        actor=Membership.objects.get(user=owner, organization=org),
    )


def test_deleting_a_user_keeps_the_audit_log(staff_client, org, owner, admin):
    # Not the last owner: Acme keeps another one.
    _second_owner(org, owner, admin)
    events = AuditEvent.objects.filter(actor_user=owner).count()
    assert events

    response = staff_client.post(admin_url(owner, "delete", owner.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=owner.pk).exists()
    assert AuditEvent.objects.filter(actor_label=owner.email, actor_user=None).count() == events


def test_the_last_owner_of_an_organization_cannot_be_deleted(staff_client, org, owner, member):
    assert "deletelink" not in staff_client.get(admin_url(owner, "change", owner.pk)).content.decode()

    response = staff_client.post(admin_url(owner, "delete", owner.pk), {"post": "yes"})

    assert response.status_code == 302
    assert response["Location"] == admin_url(owner, "change", owner.pk)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not deleted: Acme would be left without an owner. Make someone else an owner in the console first."
    ]
    assert User.objects.filter(pk=owner.pk).exists()
    assert Membership.objects.filter(user=owner, organization=org, role=Role.OWNER).exists()


def test_bulk_delete_refuses_a_selection_holding_an_organizations_last_owner(staff_client, org, owner, member):
    response = staff_client.post(
        admin_url(User, "changelist"),
        {"action": "delete_selected", "_selected_action": [owner.pk, member.pk], "post": "yes"},
        follow=True,
    )

    assert "Not deleted: Acme would be left without an owner." in response.content.decode()
    assert User.objects.filter(pk__in=[owner.pk, member.pk]).count() == 2


def test_bulk_delete_refuses_to_delete_every_owner_at_once(staff_client, org, owner, admin):
    # Each is not the last owner on their own; together they are.
    _second_owner(org, owner, admin)

    staff_client.post(
        admin_url(User, "changelist"), {"action": "delete_selected", "_selected_action": [owner.pk, admin.pk], "post": "yes"}
    )

    assert User.objects.filter(pk__in=[owner.pk, admin.pk]).count() == 2


def test_bulk_delete_still_deletes_users_who_own_nothing_alone(staff_client, org, owner, member, viewer):
    confirm = staff_client.post(
        admin_url(User, "changelist"), {"action": "delete_selected", "_selected_action": [member.pk, viewer.pk]}
    )
    assert confirm.status_code == 200
    assert "admin/delete_selected_confirmation.html" in [t.name for t in confirm.templates]

    staff_client.post(
        admin_url(User, "changelist"), {"action": "delete_selected", "_selected_action": [member.pk, viewer.pk], "post": "yes"}
    )

    assert not User.objects.filter(pk__in=[member.pk, viewer.pk]).exists()
    assert User.objects.filter(pk=owner.pk).exists()


def test_run_at_next_tick_makes_a_periodic_job_due(staff_client):
    from datetime import timedelta

    from django.utils import timezone

    from tinko.models import PeriodicJob

    job = PeriodicJob.objects.create(name="clear_expired_sessions", next_run_at=timezone.now() + timedelta(hours=5))
    response = staff_client.post(
        "/admin/tinko/periodicjob/", {"action": "run_at_next_tick", "_selected_action": [job.name]}, follow=True
    )
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.next_run_at <= timezone.now()


def test_recovery_pages_load_without_the_link_token_hash(staff_client, org, api_key):
    import json

    from django.test import Client

    from recovery.models import FailureEvent, Payment, RecoveryAttempt, RecoveryLink, RetryPolicy
    from recovery.services import send_recovery_link

    client = Client(headers={"Authorization": f"Bearer {api_key[1]}"})
    body = {"reference": "order-1", "amount": 100, "currency": "USD", "provider": "sandbox",
            "failure": {"decline_code": "insufficient_funds"}}
    assert client.post("/api/v1/events/payment_failed", json.dumps(body), content_type="application/json").status_code == 201
    payment = Payment.objects.get()
    link, token = send_recovery_link(payment=payment)
    for obj in [payment, FailureEvent.objects.get(), RecoveryAttempt.objects.get(), RetryPolicy.objects.get(organization=org), link]:
        assert staff_client.get(admin_url(type(obj), "changelist")).status_code == 200
        page = staff_client.get(admin_url(obj, "change", obj.pk))
        assert page.status_code == 200
    assert link.token_hash not in page.content.decode()
    assert token not in page.content.decode()
    assert RecoveryLink.objects.count() == 1


def test_old_admin_addresses_of_payments_and_customers_redirect_to_recovery(staff_client):
    # Customers and payments moved from the payments app to recovery; staff's bookmarks still land.
    assert staff_client.get("/admin/payments/payment/?status=failed").headers["Location"] == "/admin/recovery/payment/?status=failed"
    assert staff_client.get("/admin/payments/customer/7/change/").headers["Location"] == "/admin/recovery/customer/7/change/"
    assert staff_client.get("/admin/recovery/payment/").status_code == 200
