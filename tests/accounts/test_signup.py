from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from tests.accounts.conftest import SIGNUP_PASSWORD, link_in, only_mail_to, signed_in_user_id
from tinko import services
from tinko.models import AuditEvent, Membership, Organization, Role, User


def signup_data(**overrides):
    data = {
        "name": "Asha Rao",
        "email": "asha@shop.test",
        "organization_name": "Asha's Shop",
        "password1": SIGNUP_PASSWORD,
        "password2": SIGNUP_PASSWORD,
    }
    data.update(overrides)
    return data


def test_signup_creates_organization_with_owner_and_waits_for_verification(client, db, deliver):
    with deliver():
        response = client.post("/accounts/signup/", signup_data())

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    user = User.objects.get(email="asha@shop.test")
    assert user.name == "Asha Rao"
    assert user.check_password(SIGNUP_PASSWORD)
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.organization.name == "Asha's Shop"
    assert AuditEvent.objects.filter(organization=membership.organization, action="organization.created").exists()
    # Verification is mandatory in production: no session before the link is followed.
    assert signed_in_user_id(client) is None
    assert not EmailAddress.objects.get(user=user).verified
    message = only_mail_to("asha@shop.test")
    assert message.subject == "Confirm your e-mail address for Tinko"


def test_verification_mail_is_tinkos_own_with_the_persons_name_and_the_site(client, db, deliver, settings):
    settings.SITE_URL = "https://tinko.example.com"
    with deliver():
        client.post("/accounts/signup/", signup_data())
    message = only_mail_to("asha@shop.test")
    assert message.body.startswith("Hi Asha,\n\nConfirm your e-mail address")
    assert "Hello from" not in message.body and "Thank you for using" not in message.body
    assert "https://tinko.example.com" in message.body and "127.0.0.1" not in message.body
    (html, mimetype), = message.alternatives
    assert mimetype == "text/html" and "Confirm e-mail address" in html and "https://tinko.example.com" in html


def test_following_the_verification_link_verifies_and_signs_in(client, db, deliver):
    with deliver():
        client.post("/accounts/signup/", signup_data())
    path = link_in(only_mail_to("asha@shop.test"), r"/accounts/confirm-email/[^/\s]+/")

    page = client.get(path)
    assert page.status_code == 200
    assert b"asha@shop.test" in page.content
    response = client.post(path)

    assert response.status_code == 302
    assert response["Location"] == "/console/"
    user = User.objects.get(email="asha@shop.test")
    assert EmailAddress.objects.get(user=user).verified
    assert signed_in_user_id(client) == str(user.pk)
    assert client.get("/console/").status_code == 200


def test_verified_address_can_sign_in_from_another_browser(client, db, deliver):
    with deliver():
        client.post("/accounts/signup/", signup_data())
    Client().post(link_in(only_mail_to("asha@shop.test"), r"/accounts/confirm-email/[^/\s]+/"))

    other = Client()
    response = other.post("/accounts/login/", {"login": "asha@shop.test", "password": SIGNUP_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/console/"
    assert signed_in_user_id(other) == str(User.objects.get(email="asha@shop.test").pk)


@pytest.mark.django_db(transaction=True)
def test_signup_is_one_transaction_a_failing_organization_leaves_no_user(monkeypatch):
    # Fail at the last write of create_organization, after the organization and
    # the owner membership rows were inserted, to prove all of it rolls back.
    def audit_fails(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(services, "record_audit", audit_fails)
    client = Client(raise_request_exception=True)

    with pytest.raises(RuntimeError, match="audit store unavailable"):
        client.post("/accounts/signup/", signup_data())

    assert not User.objects.exists()
    assert not EmailAddress.objects.exists()
    assert not Organization.objects.exists()
    assert not Membership.objects.exists()


def test_signup_with_a_taken_address_in_other_case_is_a_form_error(client, owner, org, deliver):
    with deliver():
        response = client.post(
            "/accounts/signup/", signup_data(email="Owner@Acme.test", organization_name="Acme Again")
        )

    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [
        "An account with this e-mail address already exists. Sign in, or reset your password if you forgot it."
    ]
    assert b"An account with this e-mail address already exists" in response.content
    assert User.objects.count() == 1
    assert list(Organization.objects.values_list("name", flat=True)) == ["Acme"]
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("password", "complaint"),
    [
        ("password1", "too short"),
        ("Tinko2024", "too short"),
        ("80431967520374", "entirely numeric"),
        ("password123", "too common"),
        ("asha@shop.test", "too similar"),
    ],
)
def test_signup_with_a_weak_password_is_a_form_error(client, db, password, complaint):
    response = client.post("/accounts/signup/", signup_data(password1=password, password2=password))

    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["password1"])
    assert complaint in errors
    assert not User.objects.exists()
    assert not Organization.objects.exists()


def test_signup_with_mismatched_passwords_is_a_form_error(client, db):
    response = client.post("/accounts/signup/", signup_data(password2=SIGNUP_PASSWORD + "x"))

    assert response.context["form"].errors["password2"] == ["You must type the same password each time."]
    assert not User.objects.exists()


@pytest.mark.parametrize("organization_name", ["", "   "])
def test_signup_without_organization_name_is_a_form_error(client, db, organization_name):
    response = client.post("/accounts/signup/", signup_data(organization_name=organization_name))

    assert response.status_code == 200
    assert response.context["form"].errors["organization_name"] == ["This field is required."]
    assert not User.objects.exists()
    assert not Organization.objects.exists()


def test_signup_page_asks_for_organization_and_name(client, db):
    response = client.get("/accounts/signup/")

    content = response.content.decode()
    assert '<label for="id_organization_name">Organization name</label>' in content
    assert '<label for="id_name">Your name</label>' in content
    assert 'name="organization_name"' in content and "required" in content
