"""Console CSP with nonces, sign-in throttling that cannot lock the owner out, merchant webhook addresses."""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest
from django.test import Client

from notifications import webhooks
from tests.accounts.conftest import password_login, signed_in_user_id
from tests.conftest import PASSWORD

TOO_MANY = "Too many failed login attempts. Try again later."


def _policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.partition(" ")[2] for part in header.split("; ")}


@pytest.mark.django_db
def test_console_pages_have_a_nonce_csp_that_covers_their_scripts(owner_client):
    response = owner_client.get("/console/")
    policy = _policy(response)

    nonce = re.search(r"'nonce-([^']+)'", policy["script-src"]).group(1)
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    page = response.content.decode()
    # Every script is a file of ours or carries this response's nonce; no inline handlers or style attributes.
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert 'src="/static/' in tag or f'nonce="{nonce}"' in tag, tag
    assert not re.search(r"\son[a-z]+=", page)
    assert "includeIndicatorStyles" in page  # htmx injects no <style> of its own


@pytest.mark.django_db
def test_each_response_gets_its_own_nonce(owner_client):
    first = re.search(r"'nonce-([^']+)'", owner_client.get("/console/")["Content-Security-Policy"]).group(1)
    second = re.search(r"'nonce-([^']+)'", owner_client.get("/console/")["Content-Security-Policy"]).group(1)
    assert first != second


@pytest.mark.django_db
def test_sign_in_and_api_docs_pages_have_the_csp(client):
    for path in ("/accounts/login/", "/api/docs/"):
        assert "script-src 'self'" in client.get(path)["Content-Security-Policy"]


@pytest.mark.django_db
def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out_elsewhere(owner, org):
    attacker = Client(REMOTE_ADDR="203.0.113.66")
    for attempt in range(6):
        password_login("owner@acme.test", f"wrong guess {attempt}", client=attacker)
    _, response = password_login("owner@acme.test", PASSWORD, client=attacker)
    assert response.context["form"].non_field_errors() == [TOO_MANY]

    owner_browser = Client(REMOTE_ADDR="198.51.100.20")
    _, response = password_login("owner@acme.test", PASSWORD, client=owner_browser)

    assert response.status_code == 302
    assert signed_in_user_id(owner_browser) == str(owner.pk)


@pytest.mark.parametrize("url", [
    "https://[::127.0.0.1]/", "https://[64:ff9b::7f00:1]/", "https://[2002:7f00:1::]/", "https://[::ffff:10.0.0.1]/",
    "https://[64:ff9b:1::a00:1]/", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "https://[fd00::1]/",
    "https://[fe80::1]/", "https://[ff02::1]/", "https://[::]/", "https://[2002:c0a8:101::]/",
])
def test_every_non_global_ipv6_form_is_refused(url, settings):
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.check_url(url)


@pytest.mark.parametrize("address", ["2606:4700::1111", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1"])
def test_global_ipv6_addresses_and_forms_of_public_ipv4_pass(address):
    assert webhooks.is_public_address(ipaddress.ip_address(address))


def test_delivery_checks_the_address_it_connects_to_not_a_second_lookup(monkeypatch, settings):
    """A name that resolved to a public address on save, then to 127.0.0.1 (DNS rebinding), is refused at connect time."""
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = False
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))],
                    [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))]])
    connected = []
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda *a, **k: next(answers))
    monkeypatch.setattr(webhooks.socket.socket, "connect", lambda self, addr: connected.append(addr))

    webhooks.check_url("https://hooks.example.com/x")  # on save: public
    code, error, _, _ = webhooks._post("https://hooks.example.com/x", body="{}", headers={})

    assert code is None and error == "The URL points at a private or local address."
    assert connected == []


@pytest.mark.django_db
def test_delivery_holds_no_transaction_or_lock_during_the_request(org, owner, settings, monkeypatch):
    from django.db import connection

    from notifications.models import WebhookDelivery

    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/hook", events=[], user=owner)
    (message,) = webhooks.emit_many(organization_id=org.pk, events=[("payment.recovered", {}, None)])
    delivery = WebhookDelivery.objects.get(message=message)
    seen = {}

    def post(url, *, body, headers):
        # pytest-django wraps the test in one transaction: inside it, no further savepoint may be open.
        seen["depth"] = len(connection.savepoint_ids)
        seen["in_flight"] = WebhookDelivery.objects.get(pk=delivery.pk).next_attempt_at
        return 200, "", "ok", 1

    monkeypatch.setattr(webhooks, "_post", post)
    delivery = webhooks.deliver(delivery.pk)

    assert seen["depth"] == 0
    assert seen["in_flight"] > delivery.created_at  # marked in flight: not due for anyone else meanwhile
    assert delivery.status == "succeeded" and delivery.attempt_count == 1
