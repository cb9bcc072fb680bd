"""The Compare policies page in a real browser: start a run, watch the progress bar, read the results."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import screenshot, sign_in
from tinko import services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_rules")]


def test_compare_policies_shows_progress_then_the_side_by_side_results(page, live_server, run_jobs):
    csp_errors: list[str] = []
    page.on("console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    owner = make_user("owner@compare.test")
    services.create_organization(name="Compare Shop", owner=owner)
    sign_in(page, "owner@compare.test", PASSWORD)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Compare policies").click()
    page.get_by_label("Default", exact=True).check()
    page.get_by_label("Failures to simulate").fill("300")
    page.get_by_label("Random seed").fill("5")
    page.get_by_role("button", name="Run the comparison").click()
    page.wait_for_url("**/policies/compare/?run=*")
    # The job has not run yet: the page shows its progress and keeps asking.
    expect(page.locator("#compare-progress")).to_be_visible()
    screenshot(page, "compare-progress")

    run_jobs()

    results = page.locator("#compare-results")
    expect(results).to_be_visible(timeout=15_000)
    text = results.inner_text()
    for name in ("Default", "Tinko default", "8 retries in 14 days + 2 e-mails", "Retry on days 8/16/24 + 1 e-mail",
                 "Daily for 14 days"):
        assert name in text
    expect(page.get_by_role("heading", name="Results: 300 failures, seed 5")).to_be_visible()
    expect(page.locator("#compare-progress")).to_have_count(0)
    screenshot(page, "compare-results")
    assert csp_errors == []
