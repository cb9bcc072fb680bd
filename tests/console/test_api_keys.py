"""API keys: the plaintext is shown once and never stored; revoking is audited."""

import json
import re

from tinko.models import ApiKey, AuditEvent, hash_token

URL = "/console/developers/api-keys/"


def _create(client, name="CI server"):
    response = client.post(URL, {"name": name})
    match = re.search(r'value="(tk_[a-z0-9]{8}_[A-Za-z0-9_-]+)"', response.content.decode())
    return response, match.group(1) if match else None


def test_creating_a_key_shows_its_plaintext_with_a_copy_warning(owner_client):
    response, plaintext = _create(owner_client)

    assert response.status_code == 200
    assert plaintext
    assert "only time Tinko shows it" in response.content.decode()
    assert "no-store" in response["Cache-Control"]


def test_the_plaintext_is_not_shown_again(owner_client):
    _response, plaintext = _create(owner_client)

    again = owner_client.get(URL).content.decode()

    assert plaintext not in again
    assert "CI server" in again


def test_the_database_holds_only_the_keys_hash(owner_client, org):
    _response, plaintext = _create(owner_client)

    key = ApiKey.objects.get(organization=org, name="CI server")
    assert key.key_hash == hash_token(plaintext)
    for field in ApiKey._meta.concrete_fields:
        assert plaintext not in str(getattr(key, field.attname))
    for event in AuditEvent.objects.filter(organization=org):
        stored = json.dumps(event.data) + event.actor_label + event.target_label + event.target_id
        assert plaintext not in stored


def test_the_plaintext_is_kept_in_neither_session_nor_cookies(owner_client):
    response, plaintext = _create(owner_client)

    assert plaintext not in str(dict(owner_client.session))
    assert all(plaintext not in morsel.value for morsel in response.cookies.values())


def test_key_list_shows_the_prefix_only(owner_client, org, owner):
    _response, plaintext = _create(owner_client)
    key = ApiKey.objects.get(name="CI server")

    content = owner_client.get(URL).content.decode()

    assert key.display_prefix in content
    secret_part = plaintext.removeprefix(key.display_prefix + "_")
    assert secret_part not in content


def test_creating_a_key_is_audited(owner_client, org, owner):
    _create(owner_client)

    event = AuditEvent.objects.get(organization=org, action="apikey.created")
    assert event.actor_user == owner
    assert event.ip_address == "127.0.0.1"


def test_a_key_without_a_name_is_a_form_error(owner_client, org):
    response = owner_client.post(URL, {"name": "   "})

    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert not ApiKey.objects.filter(organization=org).exists()


def test_revoking_a_key_marks_it_revoked_and_audits(owner_client, org, owner, acme_key):
    response = owner_client.post(f"{URL}{acme_key.pk}/revoke/", follow=True)

    acme_key.refresh_from_db()
    assert acme_key.revoked_at is not None
    event = AuditEvent.objects.get(organization=org, action="apikey.revoked")
    assert (event.actor_user, event.target_id) == (owner, str(acme_key.pk))
    assert response.redirect_chain == [(URL, 302)]
    assert "was revoked" in response.content.decode()


def test_revoked_key_no_longer_authenticates(owner_client, api_key):
    key, plaintext = api_key
    assert owner_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    owner_client.post(f"{URL}{key.pk}/revoke/")

    response = owner_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    assert response.status_code == 401


def test_revoking_over_htmx_returns_the_updated_row(owner_client, acme_key):
    response = owner_client.post(f"{URL}{acme_key.pk}/revoke/", HTTP_HX_REQUEST="true")

    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith(f'<tr id="api-key-{acme_key.pk}">')
    assert "Revoked" in content
    assert "/revoke/" not in content


def test_revoke_needs_post(owner_client, acme_key):
    response = owner_client.get(f"{URL}{acme_key.pk}/revoke/")

    assert response.status_code == 405
    acme_key.refresh_from_db()
    assert acme_key.revoked_at is None


def test_an_overlong_key_name_is_a_form_error(owner_client, org):
    response = owner_client.post(URL, {"name": "x" * 81})

    assert response.status_code == 400
    assert not ApiKey.objects.filter(organization=org).exists()
