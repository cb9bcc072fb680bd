"""Owners manage the team; an organization always keeps at least one owner."""

from tests.conftest import login
from tests.console.conftest import membership_of
from tinko.models import AuditEvent, Invitation, Membership, Role

TEAM = "/console/team/"


def _role_url(membership):
    return f"/console/team/members/{membership.pk}/role/"


def _remove_url(membership):
    return f"/console/team/members/{membership.pk}/remove/"


def test_last_owner_cannot_be_demoted(owner_client, org, owner):
    mine = membership_of(owner, org)

    response = owner_client.post(_role_url(mine), {"role": "admin"}, follow=True)

    assert response.status_code == 200
    assert "at least one owner" in response.content.decode()
    assert Membership.objects.get(pk=mine.pk).role == Role.OWNER


def test_last_owner_cannot_remove_themselves(owner_client, org, owner):
    mine = membership_of(owner, org)

    response = owner_client.post(_remove_url(mine), follow=True)

    assert response.status_code == 200
    assert "last owner cannot be removed" in response.content.decode()
    assert Membership.objects.get(pk=mine.pk).role == Role.OWNER


def test_owner_can_promote_a_member_to_owner_and_then_be_demoted(owner_client, org, owner, member):
    member_client = login(member)
    owner_client.post(_role_url(membership_of(member, org)), {"role": "owner"})

    response = member_client.post(_role_url(membership_of(owner, org)), {"role": "admin"})

    assert response.status_code == 302
    assert membership_of(member, org).role == Role.OWNER
    assert membership_of(owner, org).role == Role.ADMIN


def test_owner_can_step_down_once_another_owner_exists(owner_client, org, owner, admin):
    owner_client.post(_role_url(membership_of(admin, org)), {"role": "owner"})

    owner_client.post(_role_url(membership_of(owner, org)), {"role": "member"})

    assert membership_of(owner, org).role == Role.MEMBER


def test_role_change_is_audited_with_from_and_to(owner_client, org, owner, member):
    owner_client.post(_role_url(membership_of(member, org)), {"role": "admin"})

    event = AuditEvent.objects.get(organization=org, action="member.role_changed")
    assert event.data == {"email": "member@acme.test", "from": "member", "to": "admin"}
    assert event.actor_user == owner


def test_unknown_role_is_refused_with_a_message(owner_client, org, member):
    response = owner_client.post(_role_url(membership_of(member, org)), {"role": "emperor"}, follow=True)

    assert "Choose one of the roles" in response.content.decode()
    assert membership_of(member, org).role == Role.MEMBER


def test_owner_removes_a_member(owner_client, org, member):
    gone = membership_of(member, org)

    response = owner_client.post(_remove_url(gone), follow=True)

    assert not Membership.objects.filter(pk=gone.pk).exists()
    assert "member@acme.test was removed" in response.content.decode()
    assert AuditEvent.objects.filter(organization=org, action="member.removed", target_id=str(gone.pk)).exists()


def test_owner_removes_another_owner(owner_client, org, admin):
    other = membership_of(admin, org)
    owner_client.post(_role_url(other), {"role": "owner"})

    owner_client.post(_remove_url(other))

    assert not Membership.objects.filter(pk=other.pk).exists()


def test_a_member_can_leave_the_organization(org, member):
    client = login(member)

    response = client.post(_remove_url(membership_of(member, org)))

    assert response.status_code == 302
    assert not Membership.objects.filter(user=member, organization=org).exists()
    # With no organization left, the console asks for a new one.
    assert client.get("/console/")["Location"] == "/console/organizations/new/"


def test_a_viewer_cannot_remove_someone_else(org, viewer, member):
    response = login(viewer).post(_remove_url(membership_of(member, org)))

    assert response.status_code == 403
    assert Membership.objects.filter(user=member, organization=org).exists()


def test_owner_revokes_an_invitation(owner_client, org, acme_invitation):
    response = owner_client.post(f"/console/team/invitations/{acme_invitation.pk}/revoke/", follow=True)

    acme_invitation.refresh_from_db()
    assert acme_invitation.status == "revoked"
    assert f'id="invitation-{acme_invitation.pk}"' not in response.content.decode()
    assert AuditEvent.objects.filter(organization=org, action="invitation.revoked").exists()


def test_revoking_an_invitation_over_htmx_returns_the_updated_row(owner_client, acme_invitation):
    response = owner_client.post(f"/console/team/invitations/{acme_invitation.pk}/revoke/", HTTP_HX_REQUEST="true")

    content = response.content.decode()
    assert content.lstrip().startswith(f'<tr id="invitation-{acme_invitation.pk}">')
    assert "Revoked" in content
    assert not Invitation.objects.pending().filter(pk=acme_invitation.pk).exists()
