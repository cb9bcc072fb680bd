"""Customers, bulk actions on Payments and Developers → Logs, in a real browser (desktop and 360 px)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from recovery.models import Payment, RetryPolicy
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import screenshot, sign_in
from tinko import services
from tinko.models import ApiRequestLog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_rules")]


@pytest.fixture
def site(settings, live_server):
    settings.SITE_URL = live_server.url
    return live_server.url


def _shop():
    from tests.console_recovery.conftest import ingest

    owner = make_user("owner@bulk.test")
    org = services.create_organization(name="Bulk Shop", owner=owner)
    RetryPolicy.objects.filter(organization=org).update(quiet_hours_start=None, quiet_hours_end=None)
    ada = {"id": "cus_ada", "email": "ada@example.com", "name": "Ada Lovelace"}
    payments = [ingest(org, reference=f"bulk-{i}", customer=ada) for i in range(3)]
    return owner, org, payments


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_bulk_retry_then_bulk_cancel_from_the_payments_list(page, phone, site):
    owner, org, payments = _shop()
    sign_in(page, "owner@bulk.test", PASSWORD)
    page.goto("/console/payments/")
    assert page.get_by_role("columnheader", name="Next attempt").is_visible()
    page.get_by_label("Select bulk-0").check()
    page.get_by_label("Select bulk-1").check()
    page.get_by_role("button", name="Retry now").click()
    page.wait_for_url("**/payments/bulk/")
    assert page.locator("[data-summary]").inner_text().startswith("2 payments done")
    assert page.locator("tr[data-reference='bulk-0']").get_by_text("A re-charge is scheduled").is_visible()
    screenshot(page, "bulk-retry")

    page.goto("/console/payments/")
    for reference in ("bulk-0", "bulk-1", "bulk-2"):
        page.get_by_label(f"Select {reference}").check()
    page.get_by_role("button", name="Cancel recovery…").click()
    page.get_by_role("button", name="Yes, cancel these recoveries").click()
    assert page.locator("[data-summary]").inner_text().startswith("3 payments done")
    assert set(Payment.objects.filter(organization=org).values_list("status", flat=True)) == {"cancelled"}

    # Refused for each, with the single action's reason, on a phone.
    sign_in(phone, "owner@bulk.test", PASSWORD)
    phone.goto("/console/payments/")
    phone.get_by_label("Select bulk-2").check()
    phone.get_by_role("button", name="Retry now").click()
    phone.wait_for_url("**/payments/bulk/")
    assert phone.get_by_text("The payment is cancelled; it cannot be retried.").is_visible()
    _fits(phone)


def test_bulk_new_links_are_shown_once_with_copy_buttons(phone, site):
    _shop()
    sign_in(phone, "owner@bulk.test", PASSWORD)
    phone.goto("/console/payments/")
    phone.get_by_label("Select bulk-0").check()
    phone.get_by_label("Select bulk-1").check()
    phone.get_by_role("button", name="Send new links").click()
    phone.wait_for_url("**/payments/bulk/")
    assert phone.locator(".bulk-results .copy-button").count() == 2
    assert re.search(r"/pay/\S+", phone.locator(".bulk-results .id").first.inner_text())
    _fits(phone)
    screenshot(phone, "bulk-links-phone")


def test_a_customers_page_from_the_list_on_a_phone(phone, site):
    _shop()
    sign_in(phone, "owner@bulk.test", PASSWORD)
    phone.get_by_role("button", name="Menu").click()
    phone.get_by_role("navigation", name="Console").get_by_role("link", name="Customers").click()
    phone.wait_for_url("**/console/customers/")
    phone.get_by_label("Search").fill("ada@example.com")
    phone.get_by_role("button", name="Apply").click()
    phone.get_by_role("link", name="Ada Lovelace").click()
    assert phone.get_by_role("heading", name="Ada Lovelace", level=1).is_visible()
    assert phone.get_by_role("link", name="bulk-2").is_visible()
    assert phone.get_by_text("Visa ···· 4242").is_visible()
    _fits(phone)
    screenshot(phone, "customer-phone")


def test_an_api_request_appears_in_developers_logs_with_its_masked_body(page, site):
    from tests.recovery.conftest import report

    owner, org, _ = _shop()
    _key, plaintext = services.create_api_key(organization=org, name="Checkout server", created_by=owner)
    body = report(reference="from-the-api", description="paid with 4242 4242 4242 4242")
    response = Client().post("/api/v1/events/payment_failed", body, content_type="application/json",
                             headers={"Authorization": f"Bearer {plaintext}", "X-Request-ID": "req-browser-1",
                                      "X-Forwarded-Proto": "https"})
    assert response.status_code == 201
    assert ApiRequestLog.objects.filter(organization=org).count() == 1

    sign_in(page, "owner@bulk.test", PASSWORD)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Logs").click()
    page.wait_for_url("**/developers/logs/")
    page.get_by_label("Search").fill("req-browser-1")
    page.get_by_role("button", name="Apply").click()
    page.locator("table.api-logs tbody a").first.click()
    assert page.get_by_text("Checkout server").is_visible()
    text = page.locator("pre.body").first.inner_text()
    assert "from-the-api" in text and "4242 4242 4242 4242" not in text and "•••• 4242" in text
    page.get_by_role("link", name="← Logs").click()
    page.wait_for_url("**/developers/logs/")
    page.get_by_role("link", name="Provider webhooks").click()
    page.wait_for_url("**/provider-webhooks/")
    page.get_by_role("link", name="Your webhook deliveries").click()
    page.wait_for_url("**/webhook-deliveries/")
    screenshot(page, "logs")
