"""Per-key rate limits: TINKO_API_RATE requests per period for each key."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tinko import services
from tinko.api.throttling import ApiKeyRateThrottle, parse_rate

ME = "/api/v1/me"


@pytest.fixture
def rate_of_three(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}


def get_me(client, plaintext):
    return client.get(ME, HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def test_request_over_the_rate_is_429_with_retry_after(client, api_key, rate_of_three):
    _key, plaintext = api_key
    for _ in range(3):
        assert get_me(client, plaintext).status_code == 200

    response = get_me(client, plaintext)

    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    error = response.json()["error"]
    assert error["type"] == "throttled"
    assert f"Retry in {retry_after} seconds" in error["message"]


def test_rate_is_per_key(client, org, owner, api_key, rate_of_three):
    _key, plaintext = api_key
    _other, other_plaintext = services.create_api_key(organization=org, name="Second key", created_by=owner)
    for _ in range(4):
        get_me(client, plaintext)
    assert get_me(client, plaintext).status_code == 429

    assert get_me(client, other_plaintext).status_code == 200


def test_counter_starts_again_in_the_next_window(client, api_key, rate_of_three, monkeypatch):
    _key, plaintext = api_key
    clock = [1_000_000_040.0]  # 20 s into a minute window
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", staticmethod(lambda: clock[0]))
    for _ in range(3):
        get_me(client, plaintext)
    response = get_me(client, plaintext)
    assert response.status_code == 429
    assert response["Retry-After"] == "40"

    clock[0] += 40
    assert get_me(client, plaintext).status_code == 200


def test_bad_tinko_api_rate_stops_start_up():
    env = {**os.environ, "DEBUG": "true", "TINKO_API_RATE": "lots"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-c", "import tinko.settings"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "TINKO_API_RATE='lots' is not a rate" in result.stderr


@pytest.mark.parametrize(("rate", "parsed"), [("600/min", (600, 60)), ("10/s", (10, 1)), ("5000/hour", (5000, 3600)), ("1/day", (1, 86400))])
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["600", "x/min", "10/fortnight", "10/"])
def test_bad_rate_is_refused(rate):
    with pytest.raises(ImproperlyConfigured):
        parse_rate(rate)


def test_requests_without_a_key_are_counted_by_address_not_forwarded_for(client, db, rate_of_three):
    # The public schema is throttled per client address; a forged header does not reset it.
    for n in range(3):
        assert client.get("/api/schema/", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code == 200

    response = client.get("/api/schema/", HTTP_X_FORWARDED_FOR="10.0.0.99")

    assert response.status_code == 429
    assert response.json()["error"]["type"] == "throttled"


def test_repeated_invalid_keys_from_one_address_are_throttled(client, db, api_key):
    from tinko.api.authentication import FAILED_AUTH_LIMIT

    bad = {"HTTP_AUTHORIZATION": "Bearer tk_aaaaaaaa_wrong"}
    for _ in range(FAILED_AUTH_LIMIT):
        assert client.get("/api/v1/me", **bad).status_code == 401
    response = client.get("/api/v1/me", **bad)
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]["type"] == "throttled"
    # The limit is per address: another client still gets its honest 401/200.
    _key, plaintext = api_key
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}", REMOTE_ADDR="10.0.0.9").status_code == 200


def test_invalid_keys_from_a_shared_address_do_not_lock_out_a_valid_key(client, db, api_key):
    from tinko.api.authentication import FAILED_AUTH_LIMIT

    _key, plaintext = api_key
    bad = {"HTTP_AUTHORIZATION": "Bearer tk_aaaaaaaa_wrong"}
    for _ in range(FAILED_AUTH_LIMIT + 1):
        client.get("/api/v1/me", **bad)
    assert client.get("/api/v1/me", **bad).status_code == 429

    # Same address (the test client's 127.0.0.1), a valid key: let through.
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    # ...without lifting the limit for the bad keys.
    response = client.get("/api/v1/me", **bad)
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "throttled"
