"""The schema and the answers agree where schemathesis found they did not."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_an_undecodable_cursor_is_a_documented_400(api_key, client):
    response = client.get("/api/v1/payments", {"cursor": "º\x1d"}, headers={"Authorization": f"Bearer {api_key[1]}"})

    assert response.status_code == 400
    assert "cursor" in response.json()["error"]["fields"]
    schema = client.get("/api/schema/?format=json").json()
    assert "400" in schema["paths"]["/api/v1/payments"]["get"]["responses"]


def test_quiet_hours_are_documented_as_the_clock_times_the_api_returns(api_key, client):
    schema = client.get("/api/schema/?format=json").json()
    field = schema["components"]["schemas"]["RetryPolicy"]["properties"]["quiet_hours_start"]
    policy = client.get("/api/v1/retry_policies", headers={"Authorization": f"Bearer {api_key[1]}"}).json()[0]

    assert "format" not in field
    assert re.fullmatch(field["pattern"], policy["quiet_hours_start"])


def test_nested_field_errors_are_documented(client):
    schema = client.get("/api/schema/?format=json").json()
    fields = schema["components"]["schemas"]["ErrorDetail"]["properties"]["fields"]
    kinds = {option["type"] for option in fields["additionalProperties"]["oneOf"]}
    assert kinds == {"array", "object"}
