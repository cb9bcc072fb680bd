"""Developers → Logs: API requests, provider webhooks and webhook deliveries, per organization, filterable."""

from __future__ import annotations

import json

import pytest

from notifications import webhooks
from notifications.models import WebhookDelivery, WebhookMessage as OutgoingMessage
from payments.models import WebhookMessage
from tinko import services
from tinko.models import ApiRequestLog

pytestmark = pytest.mark.django_db


def _log(org, key=None, **fields):
    data = {"organization": org, "api_key": key, "key_name": key.name if key else "", "method": "POST",
            "path": "/api/v1/events/payment_failed", "status": 201, "duration_ms": 12, "request_id": "req-1",
            "request_body": '{"reference":"order-1"}', "response_body": '{"ok":true}', **fields}
    return ApiRequestLog.objects.create(**data)


def _paths(response) -> list[str]:
    return [log.request_id for log in response.context["rows"]]


def test_api_requests_of_this_organization_only_newest_first(owner_client, org, other_org):
    _log(org, request_id="first")
    _log(org, request_id="second")
    _log(other_org, request_id="globex-secret")
    response = owner_client.get("/console/developers/logs/")
    assert response.status_code == 200
    assert _paths(response) == ["second", "first"]
    assert b"globex-secret" not in response.content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "4xx"}, ["refused"]),
        ({"status": "5xx"}, ["broken"]),
        ({"status": "2xx"}, ["by-b", "listed", "ok"]),
        ({"method": "GET"}, ["listed"]),
        ({"q": "ok"}, ["ok"]),
        ({"q": "idem-42"}, ["refused"]),
        ({"q": "/api/v1/payments"}, ["listed"]),
    ],
)
def test_api_request_filters(owner_client, org, api_key, params, expected):
    _log(org, request_id="ok")
    _log(org, request_id="refused", status=422, idempotency_key="idem-42")
    _log(org, request_id="broken", status=503)
    _log(org, request_id="listed", method="GET", path="/api/v1/payments")
    _log(org, api_key[0], request_id="by-b")
    assert sorted(_paths(owner_client.get("/console/developers/logs/", params))) == sorted(expected)


def test_api_requests_by_key(owner_client, org, owner, api_key):
    other_key, _ = services.create_api_key(organization=org, name="Other key", created_by=owner)
    _log(org, api_key[0], request_id="a")
    _log(org, other_key, request_id="b")
    assert _paths(owner_client.get("/console/developers/logs/", {"key": other_key.pk})) == ["b"]


def test_a_key_of_another_organization_is_not_a_choice(owner_client, other_org, outsider):
    theirs, _ = services.create_api_key(organization=other_org, name="Globex key", created_by=outsider)
    response = owner_client.get("/console/developers/logs/", {"key": theirs.pk})
    assert response.status_code == 400


def test_the_list_pages_by_cursor(owner_client, org, monkeypatch):
    from tinko.console import selectors

    monkeypatch.setattr(selectors, "API_LOG_PAGE_SIZE", 2)
    for i in range(5):
        _log(org, request_id=f"r{i}")
    seen, url = [], "/console/developers/logs/"
    while url:
        response = owner_client.get(url)
        seen += _paths(response)
        cursor = response.context["next_cursor"]
        url = f"/console/developers/logs/?after={cursor}" if cursor else ""
    assert seen == [f"r{i}" for i in reversed(range(5))]


def test_a_requests_page_shows_its_bodies(viewer_client, org):
    log = _log(org, idempotency_key="idem-7", response_body='{"payment":{"reference":"order-1"}}')
    response = viewer_client.get(f"/console/developers/logs/{log.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "idem-7" in body and "req-1" in body
    assert "&quot;reference&quot;: &quot;order-1&quot;" in body  # pretty-printed JSON


def test_another_organizations_request_is_a_404(owner_client, other_org):
    log = _log(other_org)
    assert owner_client.get(f"/console/developers/logs/{log.pk}/").status_code == 404


def _psp_message(org, **fields):
    data = {"provider": "stripe", "organization": org, "event_type": "payment_intent.payment_failed",
            "received_event_id": "evt_1", "status": "processed", "signature_valid": True, "response_status": 200,
            "headers": {"Stripe-Signature": "t=1,v1=abcdef", "Content-Type": "application/json"},
            "body": json.dumps({"data": {"object": {"id": "pi_1", "note": "card 4242424242424242"}}})}
    return WebhookMessage.objects.create(**{**data, **fields})


def test_provider_webhooks_of_this_organization_filterable(owner_client, org, other_org):
    _psp_message(org, received_event_id="evt_ok")
    _psp_message(org, received_event_id="evt_failed", status="failed")
    _psp_message(other_org, received_event_id="evt_globex")
    response = owner_client.get("/console/developers/logs/provider-webhooks/")
    assert [m.received_event_id for m in response.context["rows"]] == ["evt_failed", "evt_ok"]
    assert b"evt_globex" not in response.content
    filtered = owner_client.get("/console/developers/logs/provider-webhooks/", {"status": "failed"})
    assert [m.received_event_id for m in filtered.context["rows"]] == ["evt_failed"]
    by_id = owner_client.get("/console/developers/logs/provider-webhooks/", {"q": "evt_ok"})
    assert [m.received_event_id for m in by_id.context["rows"]] == ["evt_ok"]


def test_a_provider_webhooks_page_masks_its_signature_and_card_numbers(owner_client, org, other_org):
    message = _psp_message(org)
    body = owner_client.get(f"/console/developers/logs/provider-webhooks/{message.pk}/").content.decode()
    assert "abcdef" not in body and "4242424242424242" not in body
    assert "•••• 4242" in body and "pi_1" in body
    theirs = _psp_message(other_org, received_event_id="evt_2")
    assert owner_client.get(f"/console/developers/logs/provider-webhooks/{theirs.pk}/").status_code == 404


def _delivery(org, owner, url, event_type, status="succeeded"):
    endpoint = org.webhook_endpoints.filter(url=url).first() or webhooks.create_endpoint(
        organization=org, url=url, events=[], user=owner)[0]
    message = OutgoingMessage.objects.create(organization=org, event_type=event_type, payload={})
    return WebhookDelivery.objects.create(endpoint=endpoint, message=message, status=status)


def test_webhook_deliveries_of_this_organization_filterable(owner_client, org, owner, other_org, outsider, settings):
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    _delivery(org, owner, "https://hooks.acme.example/a", "payment.recovered")
    failed = _delivery(org, owner, "https://hooks.acme.example/b", "payment.failed", status="failed")
    _delivery(other_org, outsider, "https://hooks.globex.example/x", "payment.recovered")
    response = owner_client.get("/console/developers/logs/webhook-deliveries/")
    assert {d.message.event_type for d in response.context["rows"]} == {"payment.recovered", "payment.failed"}
    assert b"globex" not in response.content
    assert [d.pk for d in owner_client.get("/console/developers/logs/webhook-deliveries/",
                                           {"status": "failed"}).context["rows"]] == [failed.pk]
    assert [d.pk for d in owner_client.get("/console/developers/logs/webhook-deliveries/",
                                           {"endpoint": failed.endpoint_id}).context["rows"]] == [failed.pk]
    assert [d.pk for d in owner_client.get("/console/developers/logs/webhook-deliveries/",
                                           {"q": "payment.failed"}).context["rows"]] == [failed.pk]


def test_logs_join_the_navigation(viewer_client, org):
    body = viewer_client.get("/console/developers/logs/").content.decode()
    assert 'href="/console/developers/logs/"' in body
    assert 'href="/console/developers/logs/provider-webhooks/"' in body
    assert 'href="/console/developers/logs/webhook-deliveries/"' in body
