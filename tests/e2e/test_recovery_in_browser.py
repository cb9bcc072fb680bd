"""The recovery as merchants and customers use it, in a real browser (the issue's "Must show" flows)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from onboarding.models import OnboardingProgress
from recovery.models import Payment
from recovery.services import create_link
from recovery.steps import DEFAULT_STEPS, RECHARGE
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import screenshot, sign_in
from tinko import services
from tinko.models import ApiKey, Membership, Role

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_rules")]


@pytest.fixture
def site(settings, live_server):
    # Links in messages and the sandbox checkout point at this server.
    settings.SITE_URL = live_server.url
    return live_server.url


def _csp_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    return errors


def test_sign_up_then_onboarding_with_the_sandbox_then_an_api_key(page, run_jobs, site):
    page.goto("/accounts/signup/")
    page.get_by_label("Your name").fill("Meera Iyer")
    page.get_by_label("Email").fill("meera@dosa.test")
    page.get_by_label("Organization name").fill("Dosa Club")
    page.get_by_label("Password", exact=True).fill("quartz-Meadow-lantern-19")
    page.get_by_label("Password (again)").fill("quartz-Meadow-lantern-19")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/accounts/confirm-email/")
    run_jobs()
    (message,) = [m for m in mail.outbox if m.to == ["meera@dosa.test"]]
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)
    page.goto(re.sub(r"^https?://[^/]+", "", link))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/console/")
    screenshot(page, "dashboard")

    # The new organization's home points at Get started too; the nav's link is the one every page has.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Get started").click()
    page.get_by_role("button", name="Use the sandbox").click()
    page.wait_for_url("**/get-started/?step=policy")
    assert page.locator(".schedule li").count() > 0
    page.get_by_role("button", name="Use this policy").click()
    page.wait_for_url("**/get-started/?step=branding")
    page.get_by_label("Display name").fill("Dosa Club Bengaluru")
    page.get_by_label("Support e-mail").fill("help@dosa.test")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/get-started/?step=test")
    page.get_by_role("button", name="Send a test failure").click()
    page.wait_for_url("**/get-started/?step=test")
    assert page.get_by_text("Arrived").is_visible()
    screenshot(page, "onboarding-test-failure")
    progress = OnboardingProgress.objects.get(organization__name="Dosa Club")
    assert progress.completed_at is not None and progress.provider_choice == "sandbox"

    page.get_by_role("link", name="API keys").first.click()
    page.get_by_label("Key name").fill("Billing server")
    page.get_by_role("button", name="Create key").click()
    assert page.locator("input[readonly]").first.input_value().startswith("tk_")
    assert ApiKey.objects.filter(organization__name="Dosa Club").count() == 1


def test_failure_from_the_api_appears_in_the_list_and_its_timeline(page, site):
    owner = make_user("owner@api.test")
    org = services.create_organization(name="Api Shop", owner=owner)
    _, key = services.create_api_key(organization=org, name="k", created_by=owner)
    response = page.request.post(
        "/api/v1/events/payment_failed",
        headers={"Authorization": f"Bearer {key}"},
        data={
            "event_id": "evt_browser_1", "reference": "order-browser-1", "amount": 12900, "currency": "EUR",
            "provider": "sandbox", "failure": {"code": "expired_card", "decline_code": "expired_card"},
            "customer": {"email": "lin@example.com", "name": "Lin Chen", "timezone": "Europe/Berlin"},
            "payment_method": {"brand": "visa", "last4": "0069"},
        },
    )
    assert response.status == 201, response.text()

    sign_in(page, "owner@api.test", PASSWORD)
    page.get_by_role("link", name="Payments").click()
    row = page.get_by_role("row").filter(has_text="order-browser-1")
    assert "€129.00" in row.inner_text()
    page.get_by_label("Search").fill("lin@example.com")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name="order-browser-1").click()
    timeline = page.locator(".timeline")
    assert "Payment failed: expired card" in timeline.inner_text()
    assert "Planned: Message by Email #1" in timeline.inner_text()
    screenshot(page, "payment-detail")


def test_customer_pays_on_a_phone_and_the_console_shows_it_recovered_through_the_link(page, phone, browser, site):
    owner = make_user("owner@pay.test")
    org = services.create_organization(name="Chai Co", owner=owner)
    services.update_organization(organization=org, actor=owner, display_name="Chai Co", accent_color="#0f766e",
                                 support_email="help@chai.test")
    from tests.console_recovery.conftest import ingest

    payment = ingest(org, reference="sub-42", amount=49900, currency="INR", description="Monthly tea box",
                     customer={"email": "ravi@example.com", "name": "Ravi Kumar", "locale": "en-IN", "timezone": "Asia/Kolkata"},
                     failure={"code": "expired_card", "decline_code": "expired_card"})

    sign_in(page, "owner@pay.test", PASSWORD)
    page.goto("/console/?period=7d")
    inr = page.locator('[data-currency="INR"]')
    assert inr.locator('[data-kpi="failed"]').inner_text() == "₹499.00"
    assert inr.locator('[data-kpi="recovered"]').inner_text() == "₹0.00"
    page.goto(f"/console/payments/{payment.pk}/")
    page.get_by_role("button", name="Send a new link").click()
    pay_url = page.get_by_role("textbox", name="Pay link").input_value()
    assert pay_url.startswith(f"{site}/pay/")

    # Desktop first, for the reviewers' screenshot.
    desktop = browser.new_context(viewport={"width": 1280, "height": 900})
    desktop_page = desktop.new_page()
    desktop_page.goto(pay_url)
    screenshot(desktop_page, "pay-page-desktop")
    desktop.close()

    csp = _csp_errors(phone)
    phone.goto(pay_url)
    assert phone.locator(".greeting").inner_text() == "Hi Ravi,"
    assert phone.get_by_role("heading", level=1).inner_text() == "Your card didn't go through"
    assert "₹499.00" in phone.locator("[data-amount]").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(phone, "pay-page-phone")
    phone.get_by_role("button", name=re.compile("Pay with another card")).click()
    phone.wait_for_url("**/sandbox/**")
    phone.get_by_label("Card number").fill("4242 4242 4242 4242")
    phone.get_by_label("Expiry (MM/YY)").fill("12/34")
    phone.get_by_label("Security code (CVC)").fill("123")
    screenshot(phone, "sandbox-checkout-phone")
    phone.get_by_role("button", name=re.compile("Pay")).click()
    phone.wait_for_url("**/paid/")
    assert phone.get_by_role("heading", level=1).inner_text() == "Payment received"
    screenshot(phone, "pay-success-phone")
    assert csp == []

    page.reload()
    assert page.locator("[data-status]").inner_text() == "Recovered"
    assert page.locator("[data-channel]").inner_text() == "Pay link"
    assert "Paid through pay link" in page.locator(".timeline").inner_text()
    payment.refresh_from_db()
    assert payment.status == "recovered" and payment.recovered_channel == "link"

    # The dashboard shows the recovery on the first view after it, not a minute later.
    page.goto("/console/?period=7d")
    assert inr.locator('[data-kpi="recovered"]').inner_text() == "₹499.00"
    assert page.locator('[data-freshness="live"]').count() == 1

    # The link now says it is paid; a second payment is impossible.
    phone.goto(pay_url)
    assert phone.get_by_role("heading", level=1).inner_text() == "This payment is already paid"


def test_policy_preview_updates_as_the_admin_edits(page, site):
    owner = make_user("owner@policy.test")
    services.create_organization(name="Policy Shop", owner=owner)
    sign_in(page, "owner@policy.test", PASSWORD)
    page.get_by_role("link", name="Retry policies").click()
    page.get_by_role("link", name="Default").first.click()
    # The step's label, not a message's reason ("alongside the automatic re-charges").
    retries = page.locator(".schedule li").filter(has_text=re.compile("— Automatic re-charge"))
    before = retries.count()
    # Every re-charge of the default's insufficient-funds steps is in the preview.
    assert before == sum(step["action"] == RECHARGE for step in DEFAULT_STEPS["insufficient_funds"])
    # Remove the first and third re-charges for insufficient funds (the preview's decline).
    page.get_by_label("Insufficient funds, step 1", exact=True).select_option("")
    page.get_by_label("Insufficient funds, step 3", exact=True).select_option("")
    # A locator assertion, not wait_for_function: the console's CSP forbids the eval that one needs.
    expect(retries).to_have_count(before - 2)
    assert "customer in Asia/Kolkata" in page.locator("#preview").inner_text()
    screenshot(page, "policy-preview")


def test_viewer_sees_no_payment_actions_and_a_forged_post_is_refused(page, site):
    owner = make_user("owner@viewer.test")
    org = services.create_organization(name="Viewer Shop", owner=owner)
    viewer = make_user("viewer@viewer.test")
    Membership.objects.create(user=viewer, organization=org, role=Role.VIEWER)
    from tests.console_recovery.conftest import ingest

    payment = ingest(org, reference="watch-1")
    sign_in(page, "viewer@viewer.test", PASSWORD)
    page.goto(f"/console/payments/{payment.pk}/")
    for name in ("Retry now", "Send a new link", "Cancel recovery…"):
        assert page.get_by_role("button", name=name).count() == 0
        assert page.get_by_role("link", name=name).count() == 0
    status = page.evaluate(
        """async (pk) => {
            const csrf = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
            const r = await fetch(`/console/payments/${pk}/cancel/`, {method: 'POST', headers: {'X-CSRFToken': csrf}});
            return r.status;
        }""",
        payment.pk,
    )
    assert status == 403
    assert Payment.objects.get(pk=payment.pk).status == "recovering"


def test_expired_and_unknown_tokens_show_the_right_pages(phone, site):
    owner = make_user("owner@expired.test")
    org = services.create_organization(name="Old Links", owner=owner)
    from tests.console_recovery.conftest import ingest

    payment = ingest(org, reference="late-1")
    _, token = create_link(payment=payment, now=timezone.now() - timedelta(days=3))
    response = phone.goto(f"/pay/{token}/")
    assert response.status == 410
    assert phone.get_by_role("heading", level=1).inner_text() == "This payment link has expired"
    screenshot(phone, "pay-expired-phone")
    response = phone.goto("/pay/this-token-never-existed/")
    assert response.status == 404
    assert phone.get_by_role("heading", level=1).inner_text() == "Not found"
    assert "Old Links" not in phone.content()
