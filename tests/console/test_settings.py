"""Settings and branding: validated as form errors, saved through the service, audited."""

import pytest

from tinko.models import AuditEvent, Organization

URL = "/console/settings/"
VALID = {
    "name": "Acme",
    "timezone": "Europe/Berlin",
    "default_currency": "EUR",
    "display_name": "",
    "accent_color": "#4f46e5",
    "logo_url": "",
    "support_email": "",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus"),
        ("accent_color", "red"),
        ("accent_color", "#12345g"),
        ("default_currency", "ZZZ"),
        ("logo_url", "not a url"),
        ("logo_url", "http://acme.test/logo.png"),
        ("support_email", "help-at-acme"),
        ("name", "   "),
    ],
)
def test_bad_settings_are_form_errors_and_nothing_is_saved(owner_client, org, field, value):
    before = Organization.objects.filter(pk=org.pk).values().get()
    events_before = AuditEvent.objects.count()

    response = owner_client.post(URL, {**VALID, "display_name": "Changed too", field: value})

    assert response.status_code == 400
    content = response.content.decode()
    assert 'class="errorlist' in content
    assert Organization.objects.filter(pk=org.pk).values().get() == before
    assert AuditEvent.objects.count() == events_before


def test_valid_change_is_saved_and_audited_with_from_and_to(owner_client, org, owner):
    data = {
        **VALID,
        "name": "Acme Ltd",
        "timezone": "Asia/Kolkata",
        "default_currency": "INR",
        "display_name": "Acme Store",
        "accent_color": "#ff6600",
        "logo_url": "https://cdn.acme.test/logo.png",
        "support_email": "help@acme.test",
    }

    response = owner_client.post(URL, data, follow=True)

    assert response.redirect_chain == [(URL, 302)]
    assert "Settings saved." in response.content.decode()
    org.refresh_from_db()
    assert (org.name, org.timezone, org.default_currency, org.brand_name, org.accent_color, org.logo_url, org.support_email) == (
        "Acme Ltd", "Asia/Kolkata", "INR", "Acme Store", "#ff6600", "https://cdn.acme.test/logo.png", "help@acme.test",
    )
    event = AuditEvent.objects.get(organization=org, action="organization.updated")
    assert event.actor_user == owner
    assert event.data["changes"]["name"] == {"from": "Acme", "to": "Acme Ltd"}
    assert event.data["changes"]["timezone"] == {"from": "Europe/Berlin", "to": "Asia/Kolkata"}
    assert event.data["changes"]["accent_color"] == {"from": "#4f46e5", "to": "#ff6600"}
    assert set(event.data["changes"]) == {"name", "timezone", "default_currency", "display_name", "accent_color", "logo_url", "support_email"}


def test_saving_unchanged_settings_records_no_audit_event(owner_client, org):
    events_before = AuditEvent.objects.count()

    owner_client.post(URL, VALID)

    assert AuditEvent.objects.count() == events_before


def test_settings_form_shows_current_values_and_a_colour_picker(owner_client):
    content = owner_client.get(URL).content.decode()

    assert 'type="color" name="accent_color" value="#4f46e5"' in content
    assert '<option value="Europe/Berlin" selected>' in content
    assert '<option value="EUR" selected>' in content
    assert "Save settings" in content
