"""Request rates such as ``600/min``: the one parser for TINKO_API_RATE (settings) and the API throttle.

Free of Django beyond its exception, so settings can use it before apps load.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

# Exactly these spellings: DRF's parser reads only the first letter, so "10/month"
# would silently mean ten a minute.
PERIODS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
}

_RATE_RE = re.compile(r"\s*([0-9]+)\s*/\s*([a-z]+)\s*")


def parse_rate(rate: str, *, name: str | None = None) -> tuple[int, int]:
    """``"600/min"`` → (600, 60): (requests, period in seconds). ``name`` labels the error (a setting)."""
    match = _RATE_RE.fullmatch(rate) if isinstance(rate, str) else None
    if match is None or match.group(2) not in PERIODS or int(match.group(1)) < 1:
        label = f"{name}={rate!r}" if name else repr(rate)
        raise ImproperlyConfigured(
            f"{label} is not a rate: use a number of requests per s, min, hour or day, e.g. 600/min, 10/s, 5000/hour"
        )
    return int(match.group(1)), PERIODS[match.group(2)]
