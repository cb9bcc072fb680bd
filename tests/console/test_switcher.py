"""A user in several organizations switches between them."""

import pytest

from tinko.models import Membership, Role


@pytest.fixture
def in_two_orgs(owner, org, other_org):
    Membership.objects.create(user=owner, organization=other_org, role=Role.VIEWER)
    return owner


def test_switcher_lists_every_organization_of_the_user(owner_client, in_two_orgs, org, other_org):
    content = owner_client.get("/console/").content.decode()

    assert f'<option value="{org.pk}" selected>Acme</option>' in content
    assert f'<option value="{other_org.pk}">Globex</option>' in content


def test_switching_shows_the_second_organizations_pages(owner_client, in_two_orgs, other_org):
    response = owner_client.post("/console/switch/", {"organization": other_org.pk})

    assert response.status_code == 302
    assert response["Location"] == "/console/"
    settings_page = owner_client.get("/console/settings/").content.decode()
    assert 'name="name" value="Globex"' in settings_page
    team_page = owner_client.get("/console/team/").content.decode()
    assert "outsider@globex.test" in team_page
    assert "admin@acme.test" not in team_page


def test_role_follows_the_current_organization(owner_client, in_two_orgs, other_org):
    owner_client.post("/console/switch/", {"organization": other_org.pk})

    response = owner_client.post("/console/developers/api-keys/", {"name": "Not allowed as viewer"})

    assert response.status_code == 403


def test_switching_to_an_organization_one_is_not_a_member_of_is_404(outsider_client, org):
    response = outsider_client.post("/console/switch/", {"organization": org.pk})

    assert response.status_code == 404


@pytest.mark.parametrize("value", ["", "abc", "999999999"])
def test_switching_to_garbage_is_404(owner_client, value):
    assert owner_client.post("/console/switch/", {"organization": value}).status_code == 404


def test_switch_honours_a_safe_next(owner_client, in_two_orgs, other_org):
    response = owner_client.post("/console/switch/", {"organization": other_org.pk, "next": "/console/team/"})

    assert response["Location"] == "/console/team/"


@pytest.mark.parametrize("next_url", ["https://evil.example/phish", "//evil.example/", "javascript:alert(1)"])
def test_switch_ignores_an_unsafe_next(owner_client, in_two_orgs, other_org, next_url):
    response = owner_client.post("/console/switch/", {"organization": other_org.pk, "next": next_url})

    assert response["Location"] == "/console/"


def test_switch_needs_post(owner_client, org):
    assert owner_client.get("/console/switch/").status_code == 405
