"""The audit log: newest first, 50 a page, filters, times in the organization's zone."""

import datetime
import re

import pytest

from tests.conftest import login
from tinko import services
from tinko.models import AuditEvent

URL = "/console/audit/"


@pytest.fixture
def sixty_events(org, owner):
    start = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    AuditEvent.objects.filter(organization=org).delete()
    for n in range(60):
        event = services.record_audit(organization=org, action="test.tick", actor=owner, data={"n": n})
        AuditEvent.objects.filter(pk=event.pk).update(created_at=start + datetime.timedelta(minutes=n))


def _numbers(content):
    return [int(n) for n in re.findall(r"<td>n: (\d+)</td>", content)]


def test_first_page_shows_the_50_newest_events_newest_first(owner_client, sixty_events):
    content = owner_client.get(URL).content.decode()

    assert _numbers(content) == list(range(59, 9, -1))
    assert "Page 1 of 2" in content


def test_second_page_shows_the_rest(owner_client, sixty_events):
    content = owner_client.get(URL, {"page": 2}).content.decode()

    assert _numbers(content) == list(range(9, -1, -1))


def test_pagination_links_keep_the_filters(owner_client, sixty_events):
    content = owner_client.get(URL, {"action": "test.tick"}).content.decode()

    assert 'href="?action=test.tick&amp;page=2"' in content


def test_filter_by_action(owner_client, org, owner, acme_key):
    content = owner_client.get(URL, {"action": "apikey.created"}).content.decode()

    table = content.split("<tbody>")[1]
    assert "apikey.created" in table
    assert "organization.created" not in table


def test_filter_by_actor(owner_client, org, owner, admin):
    services.record_audit(organization=org, action="test.by_admin", actor=admin)
    services.record_audit(organization=org, action="test.by_owner", actor=owner)

    content = owner_client.get(URL, {"actor": "admin@acme.test"}).content.decode()

    table = content.split("<tbody>")[1]
    assert "test.by_admin" in table
    assert "test.by_owner" not in table


def test_filter_choices_are_this_organizations_actions(owner_client, acme_key, globex_data):
    content = owner_client.get(URL).content.decode()

    assert '<option value="apikey.created">' in content
    assert '<option value="owner@acme.test">' in content
    assert "outsider@globex.test" not in content


def test_unknown_filter_value_shows_everything(owner_client, org, acme_key):
    content = owner_client.get(URL, {"action": "no.such.action"}).content.decode()

    assert "apikey.created" in content.split("<tbody>")[1]


def test_times_are_shown_in_the_organizations_timezone(owner_client, org, owner):
    event = services.record_audit(organization=org, action="test.time", actor=owner)
    AuditEvent.objects.filter(pk=event.pk).update(created_at=datetime.datetime(2024, 1, 15, 12, 0, tzinfo=datetime.UTC))

    content = owner_client.get(URL).content.decode()

    # Acme is in Europe/Berlin: UTC+1 in January.
    assert '<time datetime="2024-01-15T13:00:00+01:00">Jan 15, 2024, 1:00:00\u202fPM</time>' in content


def test_row_shows_actor_target_summary_and_ip(owner_client, org):
    owner_client.post("/console/settings/", {
        "name": "Acme GmbH", "timezone": "Europe/Berlin", "default_currency": "EUR", "accent_color": "#4f46e5",
    })

    row = owner_client.get(URL).content.decode().split("<tbody>")[1].split("</tr>")[0]

    assert "owner@acme.test" in row
    assert "organization.updated" in row
    assert "name: Acme → Acme GmbH" in row
    assert "127.0.0.1" in row


def test_viewer_can_read_the_audit_log(org, viewer, acme_key):
    response = login(viewer).get(URL)

    assert response.status_code == 200
    assert "apikey.created" in response.content.decode()
