"""One parser for request rates (TINKO_API_RATE): what settings accept is what the throttle applies."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from tinko.api import throttling
from tinko.rates import parse_rate


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("10/s", (10, 1)), ("10/sec", (10, 1)), ("10/second", (10, 1)),
        ("600/m", (600, 60)), ("600/min", (600, 60)), ("600/minute", (600, 60)),
        ("5000/h", (5000, 3600)), ("5000/hour", (5000, 3600)),
        ("1/d", (1, 86400)), ("100000/day", (100000, 86400)),
    ],
)
def test_each_accepted_period_spelling(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize(
    "rate", ["10/month", "10/mo", "10/hours", "10/fortnight", "10/", "/min", "600", "x/min", "0/min", "-1/min", "1.5/s"]
)
def test_anything_else_is_refused(rate):
    with pytest.raises(ImproperlyConfigured, match="is not a rate"):
        parse_rate(rate)


def test_the_error_names_the_setting_when_given():
    with pytest.raises(ImproperlyConfigured, match=r"^TINKO_API_RATE='10/month' is not a rate"):
        parse_rate("10/month", name="TINKO_API_RATE")


def test_the_api_throttle_uses_the_same_parser():
    assert throttling.parse_rate is parse_rate
