"""API-key authentication on GET /api/v1/me."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tinko import services
from tinko.models import ApiKey

ME = "/api/v1/me"


def get_me(client, key=None, **headers):
    if key is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client.get(ME, **headers)


def assert_401(response, message_part=""):
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    error = response.json()["error"]
    assert error["type"] == "authentication_failed"
    assert message_part in error["message"]
    assert error["request_id"] == response["X-Request-ID"]


def test_valid_key_returns_its_organization(client, org, api_key):
    key, plaintext = api_key

    response = get_me(client, plaintext)

    assert response.status_code == 200
    assert response.json() == {
        "organization": {"slug": org.slug, "name": "Acme", "timezone": "Europe/Berlin", "default_currency": "EUR"},
        "api_key": {
            "name": "Test key",
            "prefix": f"tk_{key.prefix}",
            "created_at": key.created_at.isoformat().replace("+00:00", "Z"),
        },
    }


def test_bearer_keyword_is_case_insensitive(client, api_key):
    _key, plaintext = api_key
    assert client.get(ME, HTTP_AUTHORIZATION=f"bearer {plaintext}").status_code == 200


def test_missing_key_is_401_with_www_authenticate(client, org):
    assert_401(get_me(client), "Missing API key")


def test_other_authorization_scheme_is_401(client, api_key):
    _key, plaintext = api_key
    assert_401(client.get(ME, HTTP_AUTHORIZATION=f"Token {plaintext}"), "Missing API key")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Bearer tk_short_x",
        "Bearer ",
        "Bearer tk_abcdefgh_",
        "Bearer xx_abcdefgh_secret",
        "Bearer tk_abcdefgh_" + "a" * 300,
    ],
    ids=["no-structure", "short-prefix", "empty", "empty-secret", "wrong-marker", "too-long"],
)
def test_malformed_key_is_401(client, org, header):
    assert_401(client.get(ME, HTTP_AUTHORIZATION=header), "Malformed API key")


@pytest.mark.parametrize(
    "header",
    [
        # What a WSGI server hands over for UTF-8 bytes: each byte as a latin-1 character.
        "Bearer tk_ключключ_секрет".encode().decode("latin-1"),
        "Bearer tk_abcdefgh_café",
        # A test client may pass characters no header can carry; still a clean 401.
        "Bearer tk_abcdefgh_секрет",
    ],
    ids=["utf8-bytes", "latin-1", "unencodable"],
)
def test_non_ascii_header_is_401(client, org, header):
    assert_401(client.get(ME, HTTP_AUTHORIZATION=header), "must be ASCII")


def test_unknown_key_is_401(client, org):
    assert_401(get_me(client, "tk_abcdefgh_" + "x" * 43), "Invalid API key")


def test_known_prefix_with_wrong_secret_is_401(client, api_key):
    key, plaintext = api_key
    tampered = plaintext[:-4] + ("AAAA" if not plaintext.endswith("AAAA") else "BBBB")
    assert_401(get_me(client, tampered), "Invalid API key")


def test_revoked_key_is_401(client, owner, api_key):
    key, plaintext = api_key
    services.revoke_api_key(api_key=key, actor=owner)

    assert_401(get_me(client, plaintext), "revoked")


def test_use_sets_last_used_at(client, api_key):
    key, plaintext = api_key
    assert key.last_used_at is None
    before = timezone.now()

    get_me(client, plaintext)

    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_at >= before


def test_last_used_at_is_refreshed_once_it_is_a_minute_old(client, api_key):
    key, plaintext = api_key
    stale = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=stale)

    get_me(client, plaintext)

    key.refresh_from_db()
    assert key.last_used_at > stale + timedelta(minutes=4)


def test_last_used_at_is_not_rewritten_on_every_request(client, api_key):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    key, plaintext = api_key
    get_me(client, plaintext)  # first use writes last_used_at

    # One query finds the key (with its organization); no UPDATE follows. The others are the
    # request log's INSERT, committed without waiting for the disk (Developers → Logs).
    with CaptureQueriesContext(connection) as captured:
        assert get_me(client, plaintext).status_code == 200
    statements = [q["sql"] for q in captured.captured_queries]
    assert [sql.split()[0] for sql in statements] == ["SELECT", "INSERT"]
    assert "tinko_apirequestlog" in statements[-1]


def test_each_key_sees_only_its_own_organization(client, org, other_org, owner, outsider):
    _acme_key, acme_plaintext = services.create_api_key(organization=org, name="Acme key", created_by=owner)
    _globex_key, globex_plaintext = services.create_api_key(organization=other_org, name="Globex key", created_by=outsider)

    acme = get_me(client, acme_plaintext).json()
    globex = get_me(client, globex_plaintext).json()

    assert acme["organization"]["slug"] == org.slug
    assert acme["api_key"]["name"] == "Acme key"
    assert globex["organization"]["slug"] == other_org.slug
    assert globex["api_key"]["name"] == "Globex key"


def test_session_login_does_not_open_the_api(owner_client):
    # A console session is not an API credential (and would need CSRF protection if it were).
    assert_401(owner_client.get(ME))
