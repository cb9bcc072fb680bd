"""Every error under /api/ is JSON of one shape; the rest of the site keeps its HTML pages."""

import pytest
from django.test import Client

TEST_URLS = pytest.mark.urls("tests.api.urls")


def error_of(response, status):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["request_id"] == response["X-Request-ID"]
    return body["error"]


def auth(plaintext):
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/nope", "/api/v1/", "/api/v1/me/"])
def test_unknown_api_path_is_json_404(client, db, path):
    error = error_of(client.get(path), 404)
    assert error == {"type": "not_found", "message": "There is no API endpoint at this path.", "request_id": error["request_id"]}


def test_unknown_api_path_is_json_in_local_mode_too(client, db, settings):
    # With DEBUG on Django answers with its technical 404 page, not handler404.
    settings.DEBUG = True
    assert error_of(client.get("/api/v1/nope"), 404)["type"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/retry_policies/1.5e-182", "/api/v1/payments/x%0A/cancel", "/webhooks/nope/"])
def test_unknown_machine_path_is_json_404_without_rendering_a_page(client, db, settings, tmp_path, path):
    # Production names static files through a manifest; a page that cannot render
    # (no manifest) once turned every unknown API path into a 500.
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}
    response = client.post(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["type"] == "not_found"


def test_unknown_path_outside_the_api_stays_html(client, db):
    response = client.get("/nope/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_method_not_allowed_is_json_405(client, api_key):
    _key, plaintext = api_key
    response = client.post("/api/v1/me", **auth(plaintext))
    error = error_of(response, 405)
    assert error["type"] == "method_not_allowed"
    assert error["message"] == 'Method "POST" not allowed.'
    assert "GET" in response["Allow"]


def test_request_id_from_the_client_is_echoed_in_the_error(client, db):
    error = error_of(client.get("/api/v1/nope", HTTP_X_REQUEST_ID="trace-42"), 404)
    assert error["request_id"] == "trace-42"


@TEST_URLS
def test_unhandled_exception_in_an_api_view_is_json_500(db, api_key):
    _key, plaintext = api_key
    client = Client(raise_request_exception=False)

    error = error_of(client.get("/api/v1/_test/explodes", **auth(plaintext)), 500)

    assert error["type"] == "server_error"
    assert "boom" not in error["message"]  # internals stay in the logs


@TEST_URLS
def test_unhandled_exception_in_a_plain_view_under_api_is_json_500(db):
    client = Client(raise_request_exception=False)
    assert error_of(client.get("/api/v1/_test/plain-explodes"), 500)["type"] == "server_error"


@TEST_URLS
def test_server_error_outside_the_api_stays_html(db):
    client = Client(raise_request_exception=False)
    response = client.get("/console/_test/explodes")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


@TEST_URLS
def test_unhandled_exception_is_still_logged(db, caplog):
    client = Client(raise_request_exception=False)
    client.get("/api/v1/_test/plain-explodes")
    assert any(record.name == "django.request" and record.exc_info for record in caplog.records)


@TEST_URLS
def test_plain_view_405_under_api_is_json_and_keeps_allow(db):
    response = Client().get("/api/v1/_test/plain-post-only")
    assert error_of(response, 405)["type"] == "method_not_allowed"
    assert response["Allow"] == "POST"


@TEST_URLS
def test_validation_error_lists_fields(client, api_key):
    _key, plaintext = api_key

    response = client.post(
        "/api/v1/_test/rejects-input", {"amount": 0}, content_type="application/json", **auth(plaintext)
    )

    error = error_of(response, 400)
    assert error["type"] == "validation_error"
    assert error["message"] == "Some fields are invalid: amount, currency."
    assert error["fields"] == {
        "amount": ["Ensure this value is greater than or equal to 1."],
        "currency": ["This field is required."],
    }


@TEST_URLS
def test_malformed_json_is_a_parse_error(client, api_key):
    _key, plaintext = api_key
    response = client.post("/api/v1/_test/rejects-input", "{nope", content_type="application/json", **auth(plaintext))
    error = error_of(response, 400)
    assert error["type"] == "parse_error"
    assert "JSON parse error" in error["message"]


@TEST_URLS
def test_unsupported_media_type_is_415(client, api_key):
    _key, plaintext = api_key
    response = client.post("/api/v1/_test/rejects-input", {"amount": 1}, **auth(plaintext))  # multipart
    assert error_of(response, 415)["type"] == "unsupported_media_type"


@TEST_URLS
def test_django_http404_in_an_api_view_keeps_its_message(client, api_key):
    _key, plaintext = api_key
    error = error_of(client.get("/api/v1/_test/django-errors", **auth(plaintext)), 404)
    assert error["type"] == "not_found"
    assert error["message"] == "No such payment in this organization."


@TEST_URLS
def test_django_permission_denied_in_an_api_view_is_json_403(client, api_key):
    _key, plaintext = api_key
    error = error_of(client.delete("/api/v1/_test/django-errors", **auth(plaintext)), 403)
    assert error == {"type": "permission_denied", "message": "Only owners may do this.", "request_id": error["request_id"]}
