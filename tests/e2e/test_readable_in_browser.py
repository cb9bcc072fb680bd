"""Text a merchant must read is readable: the current Get started step is not indigo on an indigo pill."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in
from tinko import services

pytestmark = pytest.mark.django_db(transaction=True)


def _luminance(css_color: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_color)[:3])

    def channel(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(foreground: str, background: str) -> float:
    high, low = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_current_get_started_step_has_readable_contrast(page):
    owner = make_user("owner@steps.test")
    services.create_organization(name="Steps Shop", owner=owner)
    sign_in(page, "owner@steps.test", PASSWORD)

    page.goto("/console/get-started/?step=policy")
    current = page.locator('.steps li[aria-current="step"] a')
    colors = current.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")

    assert "Choose a retry policy" in current.inner_text()
    assert contrast(*colors) >= 4.5, colors
