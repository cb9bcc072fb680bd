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


def test_console_page_loads_the_users_memberships_once(owner_client, in_two_orgs, django_assert_max_num_queries):
    # The middleware resolves the current membership from the same list the switcher shows.
    # (The home page is the dashboard: its live figures lock and advance the rollup state, look
    # for changed payments and read the previous period too, a handful of small queries.)
    with django_assert_max_num_queries(25) as captured:
        content = owner_client.get("/console/").content.decode()

    assert "Globex</option>" in content
    membership_lists = [
        q["sql"] for q in captured.captured_queries
        if 'FROM "tinko_membership"' in q["sql"] and '"tinko_membership"."user_id" =' in q["sql"]
    ]
    assert len(membership_lists) == 1, membership_lists


def test_switcher_sends_the_current_page_as_next(owner_client, in_two_orgs, other_org):
    page = owner_client.get("/console/team/").content.decode()
    assert '<input type="hidden" name="next" value="/console/team/">' in page

    response = owner_client.post("/console/switch/", {"organization": other_org.pk, "next": "/console/team/"}, follow=True)

    assert response.redirect_chain == [("/console/team/", 302)]
    assert "outsider@globex.test" in response.content.decode()


def test_console_urls_with_an_object_id_render_no_page_to_switch_from(owner_client, org):
    # The switcher sends request.path as next; that is only safe while every
    # page showing it is organization-level. URLs with an id must stay POST-only.
    from django.urls import reverse

    from tinko.console.urls import urlpatterns

    with_ids = [p for p in urlpatterns if p.pattern.converters]
    assert with_ids
    for pattern in with_ids:
        if pattern.name in PAGES_WITH_AN_ID:
            continue
        url = reverse(f"console:{pattern.name}", kwargs=dict.fromkeys(pattern.pattern.converters, 1))
        assert owner_client.get(url).status_code == 405, url


# Pages of one object that do render the switcher: each sends it to its list instead (switch_next).
PAGES_WITH_AN_ID = {"api_log_detail": "/console/developers/logs/"}


def test_a_page_of_one_object_sends_the_switcher_to_its_list(owner_client, org):
    from tinko.models import ApiRequestLog

    log = ApiRequestLog.objects.create(organization=org, method="GET", path="/api/v1/payments", status=200,
                                       duration_ms=5)
    body = owner_client.get(f"/console/developers/logs/{log.pk}/").content.decode()
    assert f'name="next" value="{PAGES_WITH_AN_ID["api_log_detail"]}"' in body
