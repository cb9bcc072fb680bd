from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.utils import timezone

from tests.accounts.conftest import SIGNUP_PASSWORD, only_mail_to, signed_in_user_id
from tests.conftest import PASSWORD, login, make_user
from tinko import services
from tinko.models import Invitation, Membership, Organization, Role, User
from tinko.tenancy import SESSION_KEY as CURRENT_ORG_KEY


@pytest.fixture
def invite(org, owner):
    """invite(email, role) -> (invitation, token), sent by Acme's owner."""
    owner.name = "Olga Owner"
    owner.save(update_fields=["name"])
    inviter = Membership.objects.get(user=owner, organization=org)

    def make(email="new@acme.test", role=Role.ADMIN):
        return services.invite_member(organization=org, email=email, role=role, invited_by=inviter)

    return make


def url(token: str) -> str:
    return f"/invitations/{token}/"


def test_invitation_mail_says_who_invited_to_which_org_and_role_with_link_and_expiry(invite, deliver):
    with deliver():
        invitation, token = invite("new@acme.test", Role.ADMIN)

    message = only_mail_to("new@acme.test")
    assert message.subject == "Olga Owner invited you to Acme on Tinko"
    assert "Olga Owner (owner@acme.test) invited you to join Acme on Tinko as Admin." in message.body
    assert f"http://testserver/invitations/{token}/" in message.body
    # To the minute in the organization's zone, named (Acme is in Europe/Berlin).
    expires = invitation.expires_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert f"until {expires:%b} {expires.day}, {expires.year}" in message.body
    assert "(Central European" in message.body
    assert "&amp;" not in message.body and "&#x27;" not in message.body
    # A branded HTML part with the same link, its styles inlined for mail clients.
    (html, mimetype), = message.alternatives
    assert mimetype == "text/html" and f'href="http://testserver/invitations/{token}/"' in html
    assert "<style" not in html and 'style="' in html


def test_invitation_mail_is_plain_text_for_names_with_markup_characters(org, owner, deliver):
    owner.name = "O'Brien & Sons"
    owner.save(update_fields=["name"])
    with deliver():
        services.invite_member(
            organization=org, email="new@acme.test", role=Role.MEMBER,
            invited_by=Membership.objects.get(user=owner, organization=org),
        )

    message = only_mail_to("new@acme.test")
    assert message.subject == "O'Brien & Sons invited you to Acme on Tinko"
    assert "O'Brien & Sons (owner@acme.test) invited you" in message.body


def test_signed_in_invitee_sees_org_role_and_inviter_then_accepts_and_lands_in_the_org(invite, outsider, other_org):
    invitation, token = invite("outsider@globex.test", Role.ADMIN)
    client = login(outsider)

    page = client.get(url(token))
    assert page.status_code == 200
    content = page.content.decode()
    assert "Join Acme on Tinko" in content
    assert "<td>Admin</td>" in content
    assert "Olga Owner (owner@acme.test)" in content
    assert "Accept and join Acme" in content
    assert not Membership.objects.filter(user=outsider, organization=invitation.organization).exists()

    response = client.post(url(token))

    assert response.status_code == 302
    assert response["Location"] == "/console/"
    membership = Membership.objects.get(user=outsider, organization=invitation.organization)
    assert membership.role == Role.ADMIN
    assert client.session[CURRENT_ORG_KEY] == invitation.organization_id
    home = client.get("/console/", follow=True).content.decode()
    assert "You joined Acme as Admin." in home
    invitation.refresh_from_db()
    assert invitation.status == "accepted" and invitation.accepted_by == outsider


def test_signed_in_user_with_another_address_is_refused_and_offered_sign_out(invite, outsider, other_org):
    invitation, token = invite("someone.else@globex.test", Role.MEMBER)
    client = login(outsider)

    page = client.get(url(token))
    content = page.content.decode()
    assert "This invitation was sent to someone.else@globex.test; you are signed in as outsider@globex.test." in content
    assert 'action="/accounts/logout/"' in content
    assert f'name="next" value="/invitations/{token}/"' in content
    assert "Accept and join" not in content

    response = client.post(url(token))

    assert response.status_code == 403
    assert "This invitation was sent to someone.else@globex.test" in response.content.decode()
    assert not Membership.objects.filter(user=outsider, organization=invitation.organization).exists()
    invitation.refresh_from_db()
    assert invitation.status == "pending"

    signed_out = client.post("/accounts/logout/", {"next": url(token)})
    assert signed_out["Location"] == url(token)
    assert 'href="/accounts/signup/"' in client.get(url(token)).content.decode()


def test_anonymous_visitor_is_offered_sign_up_and_sign_in_that_returns_here(invite, outsider, other_org):
    invitation, token = invite("outsider@globex.test", Role.VIEWER)
    client = Client()

    page = client.get(url(token))
    content = page.content.decode()
    assert page.status_code == 200
    assert 'href="/accounts/signup/"' in content
    login_url = f"/accounts/login/?next=%2Finvitations%2F{token}%2F"
    assert f'href="{login_url}"' in content

    response = client.post(login_url, {"login": "outsider@globex.test", "password": PASSWORD})
    assert response["Location"] == url(token)
    client.post(url(token))
    assert Membership.objects.get(user=outsider, organization=invitation.organization).role == Role.VIEWER


def test_signup_through_an_invitation_joins_with_the_role_and_creates_no_org(invite, deliver):
    invitation, token = invite("New@Acme.test", Role.MEMBER)
    client = Client()
    client.get(url(token))

    form = client.get("/accounts/signup/")
    content = form.content.decode()
    assert "Create your account with New@acme.test to join Acme as Member." in content
    assert 'name="organization_name"' not in content
    assert 'value="New@acme.test"' in content
    assert f'<a href="/accounts/login/?next=%2Finvitations%2F{token}%2F">Sign in</a> to accept.' in content
    with deliver():
        response = client.post(
            "/accounts/signup/",
            {"name": "Nia", "email": "new@acme.test", "password1": SIGNUP_PASSWORD, "password2": SIGNUP_PASSWORD},
        )

    assert response.status_code == 302
    assert response["Location"] == "/console/"
    user = User.objects.get(email="new@acme.test")
    assert list(Organization.objects.values_list("name", flat=True)) == ["Acme"]
    assert Membership.objects.get(user=user).role == Role.MEMBER
    assert Membership.objects.get(user=user).organization == invitation.organization
    invitation.refresh_from_db()
    assert invitation.accepted_by == user
    # The token arrived by mail at this address: verified, signed in, no second mail.
    assert EmailAddress.objects.get(user=user).verified
    assert signed_in_user_id(client) == str(user.pk)
    assert [m.subject for m in mail.outbox if "Confirm" in m.subject] == []
    assert "You joined Acme as Member." in client.get("/console/").content.decode()


def test_signup_through_an_invitation_with_another_address_is_a_form_error(invite):
    invitation, token = invite("new@acme.test", Role.MEMBER)
    client = Client()
    client.get(url(token))

    response = client.post(
        "/accounts/signup/",
        {"email": "other@acme.test", "password1": SIGNUP_PASSWORD, "password2": SIGNUP_PASSWORD},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [
        "This invitation was sent to new@acme.test. Sign up with that address to join Acme, "
        "or ask for an invitation to other@acme.test."
    ]
    assert not User.objects.filter(email="other@acme.test").exists()
    invitation.refresh_from_db()
    assert invitation.status == "pending"


def test_signup_after_setting_the_invitation_aside_creates_an_own_org(invite):
    invitation, token = invite("new@acme.test", Role.MEMBER)
    client = Client()
    client.get(url(token))

    response = client.post(url(token), {"action": "dismiss"})
    assert response["Location"] == "/accounts/signup/"
    client.post(
        "/accounts/signup/",
        {
            "email": "new@acme.test",
            "organization_name": "Own Shop",
            "password1": SIGNUP_PASSWORD,
            "password2": SIGNUP_PASSWORD,
        },
    )

    user = User.objects.get(email="new@acme.test")
    assert Membership.objects.get(user=user).organization.name == "Own Shop"
    assert not EmailAddress.objects.get(user=user).verified
    invitation.refresh_from_db()
    assert invitation.status == "pending"


def test_signup_with_an_invitation_revoked_meanwhile_creates_an_own_org_only(invite, owner):
    invitation, token = invite("new@acme.test", Role.MEMBER)
    client = Client()
    client.get(url(token))
    services.revoke_invitation(invitation=invitation, actor=owner)

    response = client.post(
        "/accounts/signup/",
        {"email": "new@acme.test", "password1": SIGNUP_PASSWORD, "password2": SIGNUP_PASSWORD},
    )

    # The invitation is gone, so this is an ordinary signup again: it needs an organization.
    assert response.context["form"].errors["organization_name"] == ["This field is required."]
    assert not User.objects.filter(email="new@acme.test").exists()


def expire(invitation, token, owner):
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))


def revoke(invitation, token, owner):
    services.revoke_invitation(invitation=invitation, actor=owner)


def accept(invitation, token, owner):
    services.accept_invitation(invitation=invitation, user=make_user("new@acme.test"))


@pytest.mark.parametrize(
    ("close", "heading"),
    [
        (expire, "This invitation has expired"),
        (revoke, "This invitation was withdrawn"),
        (accept, "This invitation has already been used"),
    ],
)
def test_closed_invitation_shows_its_state_and_creates_nothing(invite, owner, close, heading):
    invitation, token = invite("new@acme.test", Role.ADMIN)
    close(invitation, token, owner)
    members_before = set(Membership.objects.values_list("pk", flat=True))
    invitee = User.objects.filter(email="new@acme.test").first() or make_user("new@acme.test")
    clients = {"anonymous": Client(), "invitee": login(invitee)}

    for who, client in clients.items():
        for method in (client.get, client.post):
            response = method(url(token))
            assert response.status_code == 410, who
            assert heading in response.content.decode(), who

    assert set(Membership.objects.values_list("pk", flat=True)) == members_before
    # A signed-out visitor holding a closed token signs up as usual.
    assert "tinko_invitation_token" not in clients["anonymous"].session


def test_unknown_token_is_404(db):
    assert Client().get(url("no-such-token")).status_code == 404
    assert Client().post(url("x" * 200)).status_code == 404
