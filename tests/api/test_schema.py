"""The OpenAPI schema and the Swagger UI docs: public, complete, and served from this site only."""

import re
from html.parser import HTMLParser

import yaml


def test_schema_is_public_openapi_3_with_me_and_the_bearer_scheme(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["ApiKey"]["type"] == "http"
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    me = schema["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"ApiKey": []}]
    assert set(me["responses"]) == {"200", "401", "429"}


def test_schema_defaults_to_yaml(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert "/api/v1/me" in yaml.safe_load(response.content)["paths"]


def test_schema_documents_the_error_shape(client, db):
    schema = client.get("/api/schema/?format=json").json()

    error = schema["components"]["schemas"]["Error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert error["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(detail["properties"]) == {"type", "message", "fields", "request_id"}
    responses = schema["paths"]["/api/v1/me"]["get"]["responses"]
    for code in ("401", "429"):
        assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]


def test_me_has_an_example(client, db):
    schema = client.get("/api/schema/?format=json").json()
    examples = schema["paths"]["/api/v1/me"]["get"]["responses"]["200"]["content"]["application/json"]["examples"]
    (example,) = examples.values()
    assert set(example["value"]) == {"organization", "api_key"}


def test_schema_ignores_a_bad_authorization_header(client, db):
    # Swagger UI may still hold a revoked key; the schema must load anyway.
    assert client.get("/api/schema/", HTTP_AUTHORIZATION="Bearer tk_revoked_x").status_code == 200


class _Resources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []
        self.inline_scripts = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        self._in_script = tag == "script" and not attrs.get("src")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)


def _docs_page(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = _Resources()
    page.feed(response.content.decode())
    return response, page


def test_docs_page_loads_only_this_sites_static_files_and_its_own_start_script(client, db):
    response, page = _docs_page(client)

    assert page.urls, "the docs page should load Swagger UI"
    # Swagger UI's start-up script comes from the docs view itself (?script), not inline: the CSP allows no inline script.
    assert all(url.startswith("/static/") or url == "/api/docs/?script=" for url in page.urls), page.urls
    assert "/api/docs/?script=" in page.urls
    assert not page.inline_scripts
    assert any(url.endswith("swagger-ui-bundle.js") for url in page.urls)
    assert not re.search(r"https?://", response.content.decode())


def test_docs_start_script_points_swagger_ui_at_the_local_schema_without_outside_validator(client, db):
    script = client.get("/api/docs/?script").content.decode()
    assert '"/api/schema/"' in script
    assert '"validatorUrl": null' in script


def test_docs_static_assets_exist(client, db):
    from django.contrib.staticfiles import finders

    _, page = _docs_page(client)
    for url in page.urls:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url
