"""JSON log lines carry the request id; one access-log line per request."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.conf import settings as django_settings

from tinko.logging import RequestIDFilter


@pytest.fixture
def json_log():
    """Capture log records as the production handler writes them (JSON formatter + request-id filter)."""
    config = dict(django_settings.LOGGING["formatters"]["json"])
    formatter_class = config.pop("()")
    module_name, _, class_name = formatter_class.rpartition(".")
    formatter = getattr(__import__(module_name, fromlist=[class_name]), class_name)(**config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIDFilter())
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
    (access,) = access_lines(json_log())
    assert access["path"] == "/invitations/<token>/"
    assert token not in json.dumps(access)


def test_probe_requests_are_logged_below_info(client, json_log):
    client.get("/healthz")
    assert access_lines(json_log()) == []
