"""The recovery dashboard in a real browser: a merchant with three months of history, on a desktop and a phone."""

from __future__ import annotations

import pytest

from analytics import synthetic
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import screenshot, sign_in
from tinko import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def merchant(default_rules):
    owner = make_user("owner@history.test")
    org = services.create_organization(name="History Shop", owner=owner, timezone="Europe/Berlin", default_currency="EUR")
    synthetic.generate(organization=org, payments=600, days=90, seed=11, holdout_percent=15)
    return owner


def test_dashboard_shows_figures_chart_and_tables(page, merchant):
    sign_in(page, "owner@history.test", PASSWORD)
    page.goto("/console/?period=90d")

    assert page.locator('[data-kpi="failed"]').first.inner_text().startswith("€")
    assert page.get_by_role("img", name="Failed and recovered value per day in EUR, with the recovery rate").is_visible()
    assert page.locator('[data-holdout="difference"]').inner_text().endswith("pp")
    screenshot(page, "dashboard")
    # Read top to bottom within two screens of a desktop (900 px tall), three currencies included.
    height = page.evaluate("document.documentElement.scrollHeight")
    assert page.locator(".kpis").count() == 1 and page.locator(".kpi-table tbody tr").count() == 2
    assert height <= 2 * 900, f"the dashboard is {height}px tall"

    page.locator('select[name="period"]').select_option("7d")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/console/?period=7d*")
    assert page.get_by_role("heading", name="Key figures").is_visible()


def test_dashboard_fits_a_phone_screen(phone, merchant):
    sign_in(phone, "owner@history.test", PASSWORD)
    phone.goto("/console/?period=90d")

    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the dashboard is {width}px wide on a 360px screen"
    screenshot(phone, "dashboard-phone")
