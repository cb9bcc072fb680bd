"""The foundation's pages as a person uses them, in a real browser."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import screenshot, sign_in
from tinko import services
from tinko.models import ApiKey, Membership, Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_up_verify_and_create_an_api_key(page, run_jobs):
    page.goto("/accounts/signup/")
    page.get_by_label("Your name").fill("Asha Rao")
    page.get_by_label("Email").fill("asha@chai.test")
    page.get_by_label("Organization name").fill("Chai Point")
    page.get_by_label("Password", exact=True).fill("plum-orbit-Ladder-72")
    page.get_by_label("Password (again)").fill("plum-orbit-Ladder-72")
    screenshot(page, "signup")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/accounts/confirm-email/")

    run_jobs()  # the verification mail is sent by a worker
    (message,) = [m for m in mail.outbox if m.to == ["asha@chai.test"]]
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)
    page.goto(re.sub(r"^https?://[^/]+", "", link))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/console/")
    assert page.get_by_role("heading", level=1).inner_text() == "Chai Point"
    screenshot(page, "console-overview")

    page.get_by_role("link", name="API keys").first.click()
    page.get_by_label("Key name").fill("Checkout server")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("input[readonly]").first.input_value()
    assert shown.startswith("tk_")
    screenshot(page, "api-key-created")
    key = ApiKey.objects.get(organization__name="Chai Point")
    assert shown.startswith(key.display_prefix)

    page.reload()  # a GET: the plaintext is gone for good
    assert shown not in page.content()
    assert key.display_prefix in page.content()


def test_org_switcher_moves_the_console_to_the_other_organization(page):
    user = make_user("ravi@two.test")
    services.create_organization(name="Alpha Shop", owner=user)
    services.create_organization(name="Beta Shop", owner=user)
    sign_in(page, "ravi@two.test", PASSWORD)
    first = page.get_by_role("heading", level=1).inner_text()
    other = "Beta Shop" if first == "Alpha Shop" else "Alpha Shop"
    page.get_by_label("Organization").select_option(label=other)  # submits on change
    expect(page.locator("h1")).to_have_text(other)
    page.get_by_role("link", name="Settings").click()
    assert page.locator("#id_name").input_value() == other


def test_viewer_sees_pages_but_no_edit_controls(page):
    owner = make_user("owner@view.test")
    org = services.create_organization(name="Viewable", owner=owner)
    viewer = make_user("viewer@view.test")
    Membership.objects.create(user=viewer, organization=org, role=Role.VIEWER)
    sign_in(page, "viewer@view.test", PASSWORD)

    page.get_by_role("link", name="Settings").click()
    assert page.locator("#id_name").is_disabled()
    assert page.get_by_role("button", name=re.compile("Save")).count() == 0
    page.get_by_role("link", name="Team").click()
    assert page.get_by_role("button", name="Send invitation").count() == 0
    page.get_by_role("link", name="API keys").first.click()
    assert page.get_by_role("button", name="Create key").count() == 0
    screenshot(page, "viewer-api-keys")

    # A forged POST from the viewer's own signed-in browser is refused.
    status = page.evaluate(
        """async () => {
            const csrf = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
            const r = await fetch('/console/developers/api-keys/', {method: 'POST',
                headers: {'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRFToken': csrf},
                body: 'name=forged'});
            return r.status;
        }"""
    )
    assert status == 403
    assert not ApiKey.objects.filter(organization=org).exists()
