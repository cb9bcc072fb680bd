"""Globex's owner cannot reach, change, or even see any object of Acme."""

import pytest

from tests.console.conftest import membership_of
from tinko.models import ApiKey, AuditEvent, Invitation, Membership


@pytest.fixture
def acme(org, owner, member, acme_key, acme_invitation):
    return {
        "org": org,
        "key": acme_key,
        "invitation": acme_invitation,
        "owner_membership": membership_of(owner, org),
        "member_membership": membership_of(member, org),
    }


def _acme_state(acme):
    return {
        "keys": list(ApiKey.objects.filter(organization=acme["org"]).values_list("pk", "revoked_at")),
        "invitations": list(Invitation.objects.filter(organization=acme["org"]).values_list("pk", "revoked_at")),
        "memberships": list(Membership.objects.filter(organization=acme["org"]).order_by("pk").values_list("pk", "role")),
        "audit": AuditEvent.objects.filter(organization=acme["org"]).count(),
    }


FOREIGN_POSTS = {
    "revoke_key": lambda a: (f"/console/developers/api-keys/{a['key'].pk}/revoke/", {}),
    "change_role": lambda a: (f"/console/team/members/{a['member_membership'].pk}/role/", {"role": "viewer"}),
    "change_owner_role": lambda a: (f"/console/team/members/{a['owner_membership'].pk}/role/", {"role": "viewer"}),
    "remove_member": lambda a: (f"/console/team/members/{a['member_membership'].pk}/remove/", {}),
    "remove_owner": lambda a: (f"/console/team/members/{a['owner_membership'].pk}/remove/", {}),
    "revoke_invitation": lambda a: (f"/console/team/invitations/{a['invitation'].pk}/revoke/", {}),
    "switch_organization": lambda a: ("/console/switch/", {"organization": a["org"].pk}),
}


@pytest.mark.parametrize("action", FOREIGN_POSTS.keys())
def test_outsider_gets_404_for_every_acme_object(outsider_client, acme, action):
    url, data = FOREIGN_POSTS[action](acme)
    before = _acme_state(acme)

    response = outsider_client.post(url, data)

    assert response.status_code == 404
    assert _acme_state(acme) == before


def test_outsider_stays_in_own_org_after_a_refused_switch(outsider_client, acme):
    outsider_client.post("/console/switch/", {"organization": acme["org"].pk})

    content = outsider_client.get("/console/settings/").content.decode()

    assert 'value="Globex"' in content


PAGES = ["/console/", "/console/settings/", "/console/team/", "/console/developers/api-keys/", "/console/audit/"]


@pytest.mark.parametrize("url", PAGES)
def test_acme_data_never_appears_on_outsider_pages(outsider_client, acme, globex_data, url):
    response = outsider_client.get(url)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Globex" in content
    assert "acme" not in content.lower()
