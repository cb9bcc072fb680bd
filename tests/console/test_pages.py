"""Every console page renders for Acme's owner and shows Acme's data only."""

import re

import pytest

from tests.conftest import login, make_user
from tinko import services
from tinko.models import Membership, Role

PAGES = {
    "home": "/console/",
    "settings": "/console/settings/",
    "team": "/console/team/",
    "api_keys": "/console/developers/api-keys/",
    "audit_log": "/console/audit/",
}


@pytest.mark.parametrize("url", PAGES.values(), ids=PAGES.keys())
def test_page_renders_for_owner_with_only_own_organizations_data(url, owner_client, viewer, acme_key, acme_invitation, globex_data):
    response = owner_client.get(url)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Acme" in content
    assert "globex" not in content.lower()


def test_home_counts_members_active_keys_and_pending_invitations(owner_client, org, owner, viewer, acme_key, acme_invitation):
    revoked, _ = services.create_api_key(organization=org, name="Old key", created_by=owner)
    services.revoke_api_key(api_key=revoked, actor=owner)

    content = owner_client.get("/console/").content.decode()

    assert re.search(r'data-count="members">2<', content)
    assert re.search(r'data-count="api-keys">1<', content)
    assert re.search(r'data-count="invitations">1<', content)


def test_home_shows_recent_audit_events(owner_client, acme_key):
    content = owner_client.get("/console/").content.decode()

    assert "apikey.created" in content
    assert "organization.created" in content


def test_home_lists_at_most_five_recent_events(owner_client, org, owner):
    # Five keep the home page within two screens; the audit log has the rest.
    for n in range(12):
        services.record_audit(organization=org, action=f"test.event{n:02d}", actor=owner)

    content = owner_client.get("/console/").content.decode()

    assert "test.event11" in content and "test.event07" in content
    assert "test.event06" not in content
    assert "organization.created" not in content


def test_home_checklist_starts_all_to_do(owner_client):
    content = owner_client.get("/console/").content.decode()

    assert content.count('badge-ok">Done') == 0
    assert content.count(">To do<") == 3


def test_home_checklist_ticks_off_key_branding_and_teammates(owner_client, org, owner, viewer, acme_key):
    services.update_organization(organization=org, actor=owner, display_name="Acme Shop")

    content = owner_client.get("/console/").content.decode()

    assert content.count('badge-ok">Done') == 3
    assert ">To do<" not in content


def test_team_page_lists_members_and_pending_invitations(owner_client, viewer, acme_invitation):
    content = owner_client.get("/console/team/").content.decode()

    assert "owner@acme.test" in content
    assert "viewer@acme.test" in content
    assert "invitee@acme.test" in content


def test_api_keys_page_lists_keys_with_their_prefix(owner_client, acme_key):
    content = owner_client.get("/console/developers/api-keys/").content.decode()

    assert "Acme deploy key" in content
    assert acme_key.display_prefix in content


def test_nav_marks_the_current_page(owner_client):
    content = owner_client.get("/console/team/").content.decode()

    assert 'href="/console/team/" aria-current="page"' in content


def test_org_less_user_is_sent_to_create_an_organization(db):
    client = login(make_user("new@example.test"))

    response = client.get("/console/settings/")

    assert response.status_code == 302
    assert response["Location"] == "/console/organizations/new/"


def test_creating_an_organization_makes_the_user_its_owner_and_current(db):
    user = make_user("founder@example.test")
    client = login(user)

    response = client.post(
        "/console/organizations/new/", {"name": "Initech", "timezone": "Asia/Kolkata", "default_currency": "INR"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/console/"
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert (membership.organization.name, membership.organization.timezone, membership.organization.default_currency) == (
        "Initech", "Asia/Kolkata", "INR",
    )
    assert "Initech" in client.get("/console/").content.decode()


def test_a_member_of_one_org_can_create_another_and_switches_to_it(owner_client, owner, org):
    owner_client.post("/console/organizations/new/", {"name": "Acme Labs", "timezone": "UTC", "default_currency": "USD"})

    content = owner_client.get("/console/settings/").content.decode()

    assert 'value="Acme Labs"' in content
    assert Membership.objects.filter(user=owner).count() == 2


@pytest.mark.parametrize(
    "data",
    [
        {"name": "", "timezone": "UTC", "default_currency": "USD"},
        {"name": "Initech", "timezone": "Mars/Olympus", "default_currency": "USD"},
        {"name": "Initech", "timezone": "UTC", "default_currency": "ZZZ"},
    ],
    ids=["no-name", "bad-timezone", "bad-currency"],
)
def test_organization_create_rejects_bad_input_with_form_errors(db, data):
    user = make_user("founder@example.test")

    response = login(user).post("/console/organizations/new/", data)

    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert not Membership.objects.filter(user=user).exists()


def test_every_navigation_link_opens_a_page_titled_as_the_link(owner_client):
    """What the menu calls a page is what the page calls itself: its <title> and its heading."""
    from html import unescape

    home = owner_client.get("/console/").content.decode()
    sidebar = home.split('id="console-nav"')[1].split("</nav>")[0]
    links = re.findall(r'<a href="(/console/[^"]*)"[^>]*>([^<]+)</a>', sidebar)
    assert len(links) >= 14
    for href, label in links:
        label = unescape(label.strip())
        page = owner_client.get(href).content.decode()
        title = unescape(re.search(r"<title>(.*?)</title>", page, re.S).group(1)).strip()
        assert title == f"{label} · Tinko", (href, title)
        if href != "/console/":  # Overview is headed by the organization's name
            heading = unescape(re.sub(r"<[^>]+>", "", re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S).group(1))).strip()
            assert heading == label, (href, heading)


def test_every_navigation_entry_opens_a_page_titled_as_the_entry(owner_client):
    """'Senders and language' must not open 'Messaging settings': the tab title says what the menu said."""
    import html

    home = owner_client.get("/console/").content.decode()
    nav = home[home.index('id="console-nav"'):home.index("</nav>", home.index('id="console-nav"'))]
    entries = re.findall(r'<a href="(/console/[^"]*)"[^>]*>([^<]+)</a>', nav)
    assert len(entries) >= 10
    for url, label in entries:
        page = owner_client.get(url)
        assert page.status_code == 200, url
        title = html.unescape(re.search(r"<title>([^<]*)</title>", page.content.decode()).group(1))
        label = html.unescape(label.strip())
        assert title.startswith(label) or label == "Overview" and title.startswith("Overview"), (url, label, title)


def test_favicon_is_served_and_linked(client):
    response = client.get("/favicon.ico")

    from django.contrib.staticfiles import finders
    from django.templatetags.static import static

    assert response.status_code == 302 and response["Location"] == static("tinko/favicon.svg")
    with open(finders.find("tinko/favicon.svg")) as icon:
        assert icon.read().startswith("<svg")
    assert f'<link rel="icon" href="{response["Location"]}"' in client.get("/accounts/login/").content.decode()
