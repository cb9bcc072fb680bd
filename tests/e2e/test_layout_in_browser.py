"""Every console page and every pay-page state fits a 360 px phone and a 1280 px desktop.

One browser, two signed-in tabs (phone and desktop), one organization filled with the
longest things a merchant's data holds (ids, e-mail addresses, URLs, names). A page
fails when the document scrolls sideways or when something spills out of its card.
A console page nobody listed here fails the coverage check, so new pages join the tour.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from notifications import webhooks
from notifications.models import MessageTemplate, Notification, WebhookDelivery
from payments.accounts import connect_account
from payments.models import WebhookMessage
from recovery import runner
from recovery.models import Payment, RetryPolicy
from recovery.services import cancel_recovery, create_link, report_paid
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import screenshot, sign_in
from tests.notifications.conftest import due_message
from tinko import services
from tinko.models import ApiRequestLog, Membership, User

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_rules")]

WIDTHS = (360, 1280)

# Card-like boxes whose content must stay inside them (a scrolling .table-wrap is allowed to scroll).
OVERFLOW_CHECK = """() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) problems.push(`page is ${doc.scrollWidth}px wide`);
  const boxes = document.querySelectorAll('.card, .entrance-card, .sheet, fieldset, .content, .filter-bar, .topbar, .sidebar, dd, td, th, h1, h2');
  for (const box of boxes) {
    const style = getComputedStyle(box);
    if (style.display === 'none' || box.closest('.visually-hidden')) continue;
    if (box.scrollWidth > box.clientWidth + 1 && style.overflowX === 'visible') {
      const what = box.tagName.toLowerCase() + (box.className ? '.' + String(box.className).split(' ').join('.') : '');
      const text = (box.querySelector('h1, h2, legend, dt') || box).textContent.trim().slice(0, 40);
      problems.push(`${what} "${text}" holds ${box.scrollWidth}px in ${box.clientWidth}px`);
    }
  }
  // What a nonce-based Content-Security-Policy would block: inline handlers and styles, scripts and
  // style sheets written into the page without the request's nonce (JSON data blocks never run).
  for (const el of document.querySelectorAll('*')) {
    for (const name of el.getAttributeNames()) {
      if (name === 'style' || name.startsWith('on')) problems.push(`<${el.tagName.toLowerCase()} ${name}="..."> (inline, CSP)`);
    }
  }
  for (const el of document.querySelectorAll('script:not([src]):not([type="application/json"]), style')) {
    if (!el.nonce) problems.push(`inline <${el.tagName.toLowerCase()}> without a nonce (CSP)`);
  }
  return problems;
}"""

# Console URLs that answer only POST (forms and buttons on the pages below), or a fragment for htmx.
NOT_PAGES = {
    "switch_organization", "team_invite", "invitation_revoke", "member_role", "member_remove", "api_key_revoke",
    "payments_export", "payment_bulk", "payment_retry", "payment_link", "policy_preview", "policy_set_default", "policy_delete",
    "provider_test", "provider_toggle", "provider_keys", "template_preview", "webhook_test", "webhook_active",
    "webhook_resend", "analytics_export", "compare_policies_run",
}

LONG_REFERENCE = "subscription-renewal-2026-12-acme-enterprise-annual-plan-0001"
LONG_CHARGE_ID = "ch_3QfailPI0001aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdefghij"
LONG_EMAIL = "accounts.payable.department.for.invoices@very-long-company-domain-name.example.com"


@pytest.fixture
def site(settings, live_server):
    settings.SITE_URL = live_server.url
    settings.NOTIFICATIONS_CAPTURE = True
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    return live_server.url


def _console_page_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern) and p.name and namespace == "console":
                names.add(p.name)

    console = next(p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and p.namespace == "console")
    walk(console.url_patterns, "console")
    return names - NOT_PAGES


def _organization_full_of_long_things(site):
    from tests.console_recovery.conftest import ingest

    owner = make_user("owner@layout.test")
    org = services.create_organization(name="Layout Laboratory Private Limited, Bengaluru Branch Office", owner=owner,
                                       timezone="Asia/Kolkata", default_currency="INR")
    services.update_organization(organization=org, actor=owner, display_name="Layout Laboratory Bengaluru",
                                 support_email=LONG_EMAIL, accent_color="#0f766e")
    membership = Membership.objects.get(user=owner, organization=org)
    services.create_api_key(organization=org, name="Production checkout server in the Mumbai data centre", created_by=owner)
    services.invite_member(organization=org, email=LONG_EMAIL, role="admin", invited_by=membership)
    connect_account(organization=org, provider="stripe", name="Main Stripe account for India",
                    secrets={"secret_key": "sk_test_" + "x" * 40, "webhook_secret": "whsec_" + "y" * 32}, actor=owner)
    endpoint, _secret = webhooks.create_endpoint(
        organization=org, url="http://127.0.0.1:9/hooks/tinko/very/long/path/to/the/merchant/receiver/endpoint",
        events=[], description="Billing system (staging)", user=owner,
    )
    customer = {"email": LONG_EMAIL, "name": "Venkataraghavan Subramanian", "phone": "+919876543210",
                "locale": "en-IN", "timezone": "Asia/Kolkata"}

    detail = ingest(org, reference=LONG_REFERENCE, amount=12_345_678, currency="INR", customer=customer,
                    description="Enterprise annual plan, 250 seats, billed yearly in advance",
                    failure={"code": "card_declined", "decline_code": "insufficient_funds",
                             "message": "Your card has insufficient funds to complete this purchase."})
    # Where it stands, as a re-charge leaves it: a sentence holding the PSP's charge id.
    Payment.objects.filter(pk=detail.pk).update(
        provider_payment_id=LONG_CHARGE_ID,
        status_reason=f"Automatic re-charge #2 declined by the bank (charge {LONG_CHARGE_ID}); retry 3 of 4 planned",
    )
    messaged = ingest(org, reference="sms-and-email-0002", customer=customer,
                      failure={"code": "expired_card", "decline_code": "expired_card"})
    runner.run_attempt(due_message(messaged).pk)
    paid = ingest(org, reference="paid-outside-0003", customer=customer)
    report_paid(payment=paid, amount=paid.amount, actor=owner)
    WebhookMessage.objects.create(
        provider="stripe", account=org.provider_accounts.first(), organization=org, payment=detail,
        event_type="payment_intent.payment_failed", received_event_id="evt_1QfailPI0001aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
        status="processed", signature_valid=True, response_status=200, result="Recorded the failure of " + LONG_REFERENCE,
    )
    MessageTemplate.objects.create(organization=org, channel="sms", kind="reminder", locale="hi",
                                   text="{{ merchant_name }}: {{ amount }} बाकी है। {{ pay_url }}")
    RetryPolicy.objects.create(organization=org, name="Gentle policy for enterprise customers on annual plans")
    return owner, org, detail, messaged, endpoint


def _pay_page_states(org, site):
    """(label, path) for every state a customer can see, each on its own payment or link."""
    from tests.console_recovery.conftest import ingest

    customer = {"email": "ravi@example.com", "name": "Ravi Kumar", "locale": "en-IN"}

    def payment(reference, **extra):
        return ingest(org, reference=reference, amount=49900, currency="INR", customer=customer,
                      description="Monthly tea box, premium assortment with extra long description", **extra)

    states = []
    live = payment("pay-live", failure={"code": "expired_card", "decline_code": "expired_card"})
    _, token = create_link(payment=live)
    states += [("pay", f"/pay/{token}/"), ("pay, declined", f"/pay/{token}/?declined=1"),
               ("pay, cancelled checkout", f"/pay/{token}/?cancelled=1"), ("pay in Hindi", f"/pay/{token}/?lang=hi")]
    auth = payment("pay-auth", failure={"code": "authentication_required", "decline_code": "authentication_required"})
    states.append(("pay, authenticate", f"/pay/{create_link(payment=auth)[1]}/"))
    paid = payment("pay-paid")
    _, paid_token = create_link(payment=paid)
    report_paid(payment=paid)
    states += [("already paid", f"/pay/{paid_token}/"), ("success", f"/pay/{paid_token}/paid/")]
    cancelled = payment("pay-cancelled")
    _, cancelled_token = create_link(payment=cancelled)
    cancel_recovery(payment=cancelled)
    states.append(("closed", f"/pay/{cancelled_token}/"))
    old = payment("pay-expired")
    states.append(("expired", f"/pay/{create_link(payment=old, now=timezone.now() - timedelta(days=3))[1]}/"))
    # A Stripe payment with no connected account: the return page waits for the PSP.
    waiting = payment("pay-confirming", provider="stripe")
    states.append(("confirming", f"/pay/{create_link(payment=waiting)[1]}/return/"))
    states.append(("not found", "/pay/this-token-never-existed/"))
    return token, states


def _problems(page) -> list[str]:
    return page.evaluate(OVERFLOW_CHECK)


def test_every_console_page_and_pay_page_fits_a_phone_and_a_desktop(browser, live_server, site, settings):
    owner, org, detail, messaged, endpoint = _organization_full_of_long_things(site)
    message = Notification.objects.filter(payment=messaged).first()
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
    assert message is not None and delivery is not None
    policy = RetryPolicy.objects.get(organization=org, is_default=True)
    psp_webhook = WebhookMessage.objects.filter(organization=org).first()
    api_log = ApiRequestLog.objects.create(
        organization=org, api_key=org.api_keys.first(), key_name=org.api_keys.first().name, method="POST",
        path=f"/api/v1/payments/{LONG_REFERENCE}/recovery_link", status=422, duration_ms=48,
        request_id="f3c1d2e4b5a697887766554433221100", idempotency_key=f"retry-{LONG_REFERENCE}-attempt-0003",
        request_body=json.dumps({"reference": LONG_REFERENCE, "customer": {"email": LONG_EMAIL}}),
        response_body=json.dumps({"error": {"type": "invalid_request", "message": "x" * 300, "charge": LONG_CHARGE_ID}}),
    )

    console = [
        "/console/", "/console/?period=90d", "/console/payments/", "/console/payments/?status=recovering",
        f"/console/payments/{detail.pk}/", f"/console/payments/{detail.pk}/cancel/",
        "/console/customers/", "/console/customers/?state=open", f"/console/customers/{detail.customer_id}/",
        "/console/policies/", "/console/policies/new/", f"/console/policies/{policy.pk}/", "/console/policies/compare/",
        "/console/providers/", "/console/get-started/?step=provider", "/console/get-started/?step=policy",
        "/console/get-started/?step=branding", "/console/get-started/?step=test",
        "/console/settings/", "/console/team/", "/console/developers/api-keys/", "/console/audit/",
        "/console/organizations/new/", "/console/outbox/", f"/console/outbox/{message.public_id}/",
        "/console/templates/", "/console/templates/email/first_notice/en/", "/console/templates/sms/reminder/hi/",
        "/console/messaging/", "/console/webhooks/", f"/console/webhooks/{endpoint.pk}/",
        "/console/developers/logs/", "/console/developers/logs/?status=4xx", f"/console/developers/logs/{api_log.pk}/",
        "/console/developers/logs/provider-webhooks/", f"/console/developers/logs/provider-webhooks/{psp_webhook.pk}/",
        "/console/developers/logs/webhook-deliveries/",
        "/accounts/email/", "/accounts/password/change/", "/accounts/2fa/",
    ]
    visited = {resolve(path.split("?")[0]).url_name for path in console}
    missing = _console_page_names() - visited
    assert not missing, f"console pages missing from the layout tour, add a URL for each: {sorted(missing)}"

    token, pay_states = _pay_page_states(org, site)
    problems: list[str] = []
    for width in WIDTHS:
        context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 800},
                                      is_mobile=width < 500, has_touch=width < 500)
        context.set_default_timeout(10_000)
        page = context.new_page()
        broken_assets: list[str] = []
        page.on("response", lambda r: broken_assets.append(r.url) if "/static/" in r.url and r.status >= 400 else None)

        for path in ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]:
            page.goto(path)
            problems += [f"{width}px {path}: {p}" for p in _problems(page)]
        sign_in(page, "owner@layout.test", PASSWORD)
        for path in console:
            page.goto(path)
            problems += [f"{width}px {path}: {p}" for p in _problems(page)]
        for label, path in pay_states:
            page.goto(path)
            problems += [f"{width}px pay page ({label}): {p}" for p in _problems(page)]
        # The sandbox card form, reached the way a customer does, then declined.
        page.goto(f"/pay/{token}/")
        page.get_by_role("button", name=re.compile("Pay with another card")).click()
        page.wait_for_url("**/sandbox/**")
        problems += [f"{width}px sandbox form: {p}" for p in _problems(page)]
        page.get_by_label("Card number").fill("4000 0000 0000 0002")
        page.get_by_label("Expiry (MM/YY)").fill("12/34")
        page.get_by_label("Security code (CVC)").fill("123")
        page.get_by_role("button", name=re.compile("Pay")).click()
        page.wait_for_load_state()
        problems += [f"{width}px sandbox form, declined: {p}" for p in _problems(page)]
        if width == 360:
            screenshot(page, "sandbox-declined-phone")
        assert not broken_assets, f"stylesheets or scripts that failed to load: {broken_assets}"
        context.close()

    # Too many unknown tokens from one address: the 429 page (last: it blocks this address's pay pages).
    settings.TINKO_PAY_MISS_RATE = "1/m"
    for width in WIDTHS:
        context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 800})
        page = context.new_page()
        page.goto("/pay/guess-one/")
        response = page.goto("/pay/guess-two/")
        assert response.status == 429
        problems += [f"{width}px pay page (too many): {p}" for p in _problems(page)]
        context.close()
    cache.clear()

    assert not problems, "pages that do not fit:\n" + "\n".join(problems)


def test_phone_navigation_opens_from_one_button_and_closes_again(phone, site):
    owner = make_user("owner@menu.test")
    services.create_organization(name="Menu Shop", owner=owner)
    sign_in(phone, "owner@menu.test", PASSWORD)
    phone.goto("/console/team/")
    nav = phone.get_by_role("navigation", name="Console")
    menu = phone.get_by_role("button", name="Menu")
    # Closed: the page starts with its own heading, not ~330 px of links.
    assert not nav.is_visible()
    assert phone.get_by_role("heading", level=1).bounding_box()["y"] < 120
    assert menu.get_attribute("aria-expanded") == "false"

    menu.click()
    assert nav.is_visible() and menu.get_attribute("aria-expanded") == "true"
    assert phone.get_by_label("Organization", exact=True).is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(phone, "navigation-open-phone")
    nav.get_by_role("link", name="API keys").click()
    phone.wait_for_url("**/developers/api-keys/")
    assert not phone.get_by_role("navigation", name="Console").is_visible()

    menu = phone.get_by_role("button", name="Menu")
    menu.click()
    phone.keyboard.press("Escape")
    assert not phone.get_by_role("navigation", name="Console").is_visible()
    assert menu.get_attribute("aria-expanded") == "false"


def test_desktop_shows_the_navigation_without_a_menu_button(page, site):
    owner = make_user("owner@wide.test")
    services.create_organization(name="Wide Shop", owner=owner)
    sign_in(page, "owner@wide.test", PASSWORD)
    assert page.get_by_role("navigation", name="Console").is_visible()
    assert not page.get_by_role("button", name="Menu").is_visible()


def test_copy_button_copies_a_long_id(browser, live_server, site):
    from tests.console_recovery.conftest import ingest

    owner = make_user("owner@copy.test")
    org = services.create_organization(name="Copy Shop", owner=owner)
    payment = ingest(org, reference="copy-1")
    Payment.objects.filter(pk=payment.pk).update(provider_payment_id=LONG_CHARGE_ID)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 360, "height": 740})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sign_in(page, "owner@copy.test", PASSWORD)
    page.goto(f"/console/payments/{payment.pk}/")
    page.get_by_role("button", name=f"Copy {LONG_CHARGE_ID}").click()
    button = page.locator(f'.copy-button[data-copy-text="{LONG_CHARGE_ID}"]')
    # The button says so for a moment, then reads "Copy" again.
    page.wait_for_function("document.querySelector('.copy-button[data-copied-now]') !== null")
    assert button.inner_text().startswith("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == LONG_CHARGE_ID
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    context.close()


def test_language_switch_keeps_the_choice_and_the_pages_still_fit(browser, live_server, site):
    from tests.console_recovery.conftest import ingest

    owner = make_user("owner@idioma.test")
    org = services.create_organization(name="Tienda de Prueba", owner=owner, default_currency="EUR")
    payment = ingest(org, reference="pedido-1", amount=123450, currency="EUR")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 360, "height": 740},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, "owner@idioma.test", PASSWORD)
    page.get_by_role("button", name="Menu").click()
    page.get_by_label("Language", exact=True).select_option("es")  # submits on change
    page.wait_for_function("document.documentElement.lang === 'es'")
    assert User.objects.get(pk=owner.pk).language == "es"
    page.goto(f"/console/payments/{payment.pk}/")
    assert page.get_by_role("heading", name="Cronología").is_visible()
    assert "1.234,50\xa0€" in page.locator(".facts").first.inner_text()

    problems = []
    for language in ("es", "hi"):
        page.get_by_role("button", name=re.compile("Menú|मेनू|Menu")).click()
        page.locator("#language-language-form").select_option(language)
        page.wait_for_function(f"document.documentElement.lang === '{language}'")
        for path in ["/console/", "/console/payments/", f"/console/payments/{payment.pk}/", "/console/policies/new/",
                     "/console/templates/", "/console/team/", "/console/get-started/?step=policy"]:
            page.goto(path)
            problems += [f"{language} {path}: {p}" for p in _problems(page)]
        screenshot(page, f"get-started-phone-{language}")
    assert not problems, "\n".join(problems)
    context.close()
