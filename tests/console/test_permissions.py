"""Viewers and members read; admins manage keys and settings; only owners manage the team."""

import pytest

from tests.conftest import login
from tests.console.conftest import membership_of
from tinko.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Role


@pytest.fixture
def scene(org, owner, admin, member, viewer, acme_key, acme_invitation):
    """Everything a forbidden POST could touch, and a snapshot to prove it was not touched."""
    return {
        "org": org,
        "key": acme_key,
        "invitation": acme_invitation,
        "owner_membership": membership_of(owner, org),
        "member_membership": membership_of(member, org),
        "users": {"admin": admin, "member": member, "viewer": viewer},
    }


def _snapshot(scene):
    org = Organization.objects.get(pk=scene["org"].pk)
    return {
        "org": (org.name, org.timezone, org.default_currency, org.display_name, org.accent_color),
        "keys": list(ApiKey.objects.order_by("pk").values_list("pk", "revoked_at")),
        "invitations": list(Invitation.objects.order_by("pk").values_list("pk", "email", "revoked_at")),
        "memberships": list(Membership.objects.order_by("pk").values_list("pk", "role")),
        "audit": AuditEvent.objects.count(),
    }


ACTIONS = {
    "create_api_key": lambda s: ("/console/developers/api-keys/", {"name": "Sneaky key"}),
    "change_settings": lambda s: (
        "/console/settings/",
        {"name": "Hacked", "timezone": "UTC", "default_currency": "USD", "accent_color": "#000000"},
    ),
    "revoke_api_key": lambda s: (f"/console/developers/api-keys/{s['key'].pk}/revoke/", {}),
    "invite": lambda s: ("/console/team/invite/", {"email": "friend@example.test", "role": "admin"}),
    "revoke_invitation": lambda s: (f"/console/team/invitations/{s['invitation'].pk}/revoke/", {}),
    "change_role": lambda s: (f"/console/team/members/{s['owner_membership'].pk}/role/", {"role": "viewer"}),
    "promote_self": lambda s: (f"/console/team/members/{s['member_membership'].pk}/role/", {"role": "owner"}),
    "remove_member": lambda s: (f"/console/team/members/{s['owner_membership'].pk}/remove/", {}),
}
TEAM_ACTIONS = ["invite", "revoke_invitation", "change_role", "promote_self", "remove_member"]


@pytest.mark.parametrize("role", ["viewer", "member"])
@pytest.mark.parametrize("action", ACTIONS.keys())
def test_viewer_and_member_posts_are_forbidden_and_change_nothing(scene, role, action):
    client = login(scene["users"][role])
    url, data = ACTIONS[action](scene)
    before = _snapshot(scene)

    response = client.post(url, data)

    assert response.status_code == 403
    assert _snapshot(scene) == before


@pytest.mark.parametrize("action", TEAM_ACTIONS)
def test_admin_cannot_manage_the_team(scene, action):
    client = login(scene["users"]["admin"])
    url, data = ACTIONS[action](scene)
    before = _snapshot(scene)

    response = client.post(url, data)

    assert response.status_code == 403
    assert _snapshot(scene) == before


def test_admin_cannot_make_someone_owner(scene):
    client = login(scene["users"]["admin"])

    response = client.post(f"/console/team/members/{scene['member_membership'].pk}/role/", {"role": "owner"})

    assert response.status_code == 403
    assert Membership.objects.get(pk=scene["member_membership"].pk).role == Role.MEMBER


def test_admin_can_create_an_api_key(scene):
    response = login(scene["users"]["admin"]).post("/console/developers/api-keys/", {"name": "Admin key"})

    assert response.status_code == 200
    assert ApiKey.objects.filter(organization=scene["org"], name="Admin key").exists()


def test_admin_can_change_settings(scene):
    data = {"name": "Acme", "timezone": "UTC", "default_currency": "USD", "accent_color": "#123456"}

    response = login(scene["users"]["admin"]).post("/console/settings/", data)

    assert response.status_code == 302
    assert Organization.objects.get(pk=scene["org"].pk).accent_color == "#123456"


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_viewer_and_member_see_settings_without_a_form_to_save(scene, role):
    content = login(scene["users"][role]).get("/console/settings/").content.decode()

    assert 'method="post" action="/console/settings/"' not in content
    assert "Save settings" not in content
    assert 'name="name" value="Acme"' in content and "disabled" in content


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
def test_non_owners_see_the_team_without_controls(scene, role):
    content = login(scene["users"][role]).get("/console/team/").content.decode()

    assert "invitee@acme.test" in content and "owner@acme.test" in content
    assert "/console/team/invite/" not in content
    assert "/role/" not in content
    assert f"/console/team/members/{scene['owner_membership'].pk}/remove/" not in content
    assert "/revoke/" not in content
    assert "Send invitation" not in content


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_viewer_and_member_see_api_keys_without_controls(scene, role):
    content = login(scene["users"][role]).get("/console/developers/api-keys/").content.decode()

    assert "Acme deploy key" in content
    assert 'action="/console/developers/api-keys/"' not in content
    assert "/revoke/" not in content
    assert "Create key" not in content


def test_owner_sees_team_controls(scene):
    owner_content = login(scene["owner_membership"].user).get("/console/team/").content.decode()

    assert "/console/team/invite/" in owner_content
    assert f"/console/team/members/{scene['member_membership'].pk}/role/" in owner_content
    assert f"/console/team/members/{scene['member_membership'].pk}/remove/" in owner_content
    assert f"/console/team/invitations/{scene['invitation'].pk}/revoke/" in owner_content
