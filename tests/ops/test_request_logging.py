"""JSON log lines carry the request id; one access-log line per request."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from tinko import services
from tinko.logging import mask_path, sentry_before_send
from tinko.models import Membership


def _build(config: dict):
    config = dict(config)
    return import_string(config.pop("()"))(**config)


@pytest.fixture
def json_log():
    """Capture log records as the production handler writes them (JSON formatter, the console handler's filters)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_build(django_settings.LOGGING["formatters"]["json"]))
    for name in django_settings.LOGGING["handlers"]["console"]["filters"]:
        handler.addFilter(_build(django_settings.LOGGING["filters"][name]))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(previous_level)


def access_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "tinko.access"]


def test_request_id_is_echoed_and_carried_by_every_log_line_of_the_request(client, json_log):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "abc-123"
    lines = json_log()
    # Django's own "Not Found" warning is logged deep inside the request...
    not_found = [line for line in lines if line["logger"] == "django.request"]
    assert not_found and not_found[0]["request_id"] == "abc-123"
    # ...and the access line closes it.
    (access,) = access_lines(lines)
    assert access["request_id"] == "abc-123"
    assert access["method"] == "GET"
    assert access["path"] == "/no-such-page/"
    assert access["status"] == 404
    assert isinstance(access["duration_ms"], float)
    assert access["level"] == "INFO"


def test_request_without_id_gets_a_generated_one(client, json_log):
    response = client.get("/no-such-page/")
    generated = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert access_lines(json_log())[0]["request_id"] == generated


@pytest.mark.parametrize("bad_id", ["a" * 65, "has spaces", "trailing-newline\n", "<script>", "ab\\cd", ""])
def test_invalid_or_oversized_request_id_is_replaced(client, json_log, bad_id):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID=bad_id)
    replacement = response["X-Request-ID"]
    assert replacement != bad_id
    assert re.fullmatch(r"[0-9a-f]{32}", replacement)
    (access,) = access_lines(json_log())
    assert access["request_id"] == replacement


def test_ids_do_not_leak_from_one_request_to_the_next(client, json_log):
    client.get("/no-such-page/", HTTP_X_REQUEST_ID="first-request")
    logging.getLogger("tinko.test").warning("between requests")
    between = [line for line in json_log() if line["message"] == "between requests"]
    assert between[0]["request_id"] == "-"


def test_no_log_line_carries_the_query_string(client, json_log):
    client.get("/no-such-page/?password=hunter2&token=abc")
    lines = json_log()
    assert access_lines(lines)[0]["path"] == "/no-such-page/"
    # Django's own "Not Found" line passes the request object along; it is not serialised.
    assert any(line["logger"] == "django.request" for line in lines)
    assert "hunter2" not in json.dumps(lines)


def test_access_log_masks_tokens_in_the_url(client, json_log, db):
    token = "S3cr3t-invitation-token-value"
    client.get(f"/invitations/{token}/")
    lines = json_log()
    (access,) = access_lines(lines)
    assert access["path"] == "/invitations/<token>/"
    # Django's own "Not Found: /invitations/..." line too.
    (not_found,) = [line for line in lines if line["logger"] == "django.request"]
    assert not_found["message"] == "Not Found: /invitations/<token>/"
    assert token not in json.dumps(lines)


@pytest.fixture
def live_invitation(org, owner):
    """(invitation, token) for an address nobody signed in here has."""
    inviter = Membership.objects.get(organization=org, user=owner)
    return services.invite_member(organization=org, email="invitee@acme.test", role="member", invited_by=inviter)


@pytest.fixture
def request_logger_records():
    """Records as the "django.request" logger hands them on, after its own filters and before any handler.

    That is what Sentry's logging integration reads (breadcrumbs, events).
    """
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    request_logger = logging.getLogger("django.request")
    request_logger.addHandler(handler)
    yield records
    request_logger.removeHandler(handler)


def test_a_forbidden_live_invitation_token_never_reaches_the_logs(
    outsider_client, live_invitation, json_log, request_logger_records
):
    _, token = live_invitation
    # Signed in as someone else than the invited address: accepting is refused.
    response = outsider_client.post(f"/invitations/{token}/")
    assert response.status_code == 403
    lines = json_log()
    (forbidden,) = [line for line in lines if line["logger"] == "django.request"]
    assert forbidden["message"] == "Forbidden: /invitations/<token>/"
    assert token not in json.dumps(lines)
    # Masked on the logger itself, so Sentry never sees the token either.
    (record,) = request_logger_records
    assert record.getMessage() == "Forbidden: /invitations/<token>/"


def test_a_csrf_failure_on_an_invitation_does_not_log_its_token(client, live_invitation, json_log):
    _, token = live_invitation
    client.handler.enforce_csrf_checks = True
    assert client.post(f"/invitations/{token}/").status_code == 403
    lines = json_log()
    assert [line["message"] for line in lines if line["logger"] == "django.security.csrf"] == [
        "Forbidden (CSRF cookie not set.): /invitations/<token>/"
    ]
    assert token not in json.dumps(lines)


def test_a_redirect_before_url_resolution_still_masks_the_token(client, json_log, db):
    # APPEND_SLASH answers before the URL is resolved.
    token = "S3cr3t-invitation-token-value"
    assert client.get(f"/invitations/{token}").status_code == 301
    (access,) = access_lines(json_log())
    assert access["path"] == "/invitations/<token>"


def test_mask_path_leaves_paths_without_secrets_alone():
    assert mask_path("/console/") == "/console/"
    assert mask_path("/no-such-page/") == "/no-such-page/"
    assert mask_path("/invitations/abc/") == "/invitations/<token>/"


def test_mask_path_masks_only_the_secrets_even_when_they_are_short():
    # allauth's reset link: a user id in base 36, then the key; "e" is also in "reset" and in the key.
    assert mask_path("/accounts/password/reset/key/e-abe-x9/") == "/accounts/password/reset/key/<uidb36>-<key>/"


def test_sentry_events_carry_no_url_secret_or_query_string():
    token = "S3cr3t-invitation-token-value"
    event = {
        "request": {
            "url": f"https://tinko.example.com/invitations/{token}/",
            "query_string": "email=invitee%40acme.test",
            "headers": {"Referer": f"https://tinko.example.com/invitations/{token}/?next=/x", "Accept": "*/*"},
        },
        "exception": {"values": [{"stacktrace": {"frames": [{"vars": {
            "request": f"<WSGIRequest: POST '/invitations/{token}/?email=invitee%40acme.test'>",
            "path": f"invitations/{token}/",
        }}]}}]},
    }
    scrubbed = sentry_before_send(event, {})
    (frame,) = scrubbed["exception"]["values"][0]["stacktrace"]["frames"]
    assert frame["vars"] == {"request": "<WSGIRequest: POST '/invitations/<token>/'>", "path": "invitations/<token>/"}
    assert scrubbed["request"]["url"] == "https://tinko.example.com/invitations/<token>/"
    assert "query_string" not in scrubbed["request"]
    assert scrubbed["request"]["headers"] == {
        "Referer": "https://tinko.example.com/invitations/<token>/",
        "Accept": "*/*",
    }


def test_probe_requests_are_logged_below_info(client, json_log):
    client.get("/healthz")
    assert access_lines(json_log()) == []
