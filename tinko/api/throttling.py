"""Per-key request rate for the API (``TINKO_API_RATE``, e.g. ``600/min``)."""

from __future__ import annotations

import time

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from tinko.models import ApiKey
from tinko.rates import parse_rate  # the one parser, shared with settings (TINKO_API_RATE)
from tinko.ratelimit import count_hit
from tinko.services import client_ip


class ApiKeyRateThrottle(BaseThrottle):
    """A fixed-window counter per API key; requests without a key are counted by address.

    DRF's own throttles keep a list of timestamps per client and write it back
    after reading it, so concurrent requests on several workers overwrite each
    other's entries and slip past the limit. An atomic increment of one counter
    per window cannot be raced, and costs the same whatever the rate. The
    price is that a client may burst up to twice the rate across a window
    boundary, which a rate limit meant to protect capacity tolerates.
    """

    scope = "api_key"
    timer = staticmethod(time.time)

    def __init__(self):
        self._wait: float | None = None

    def get_rate(self) -> str | None:
        # Read per request: DRF's throttles capture the rates when their class is
        # defined, so an overridden setting (as in tests) would be ignored.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_ident_for(self, request) -> str:
        if isinstance(request.auth, ApiKey):
            return f"key:{request.auth.pk}"
        # Not DRF's get_ident: it believes any X-Forwarded-For a client sends.
        return f"ip:{client_ip(request) or 'unknown'}"

    def allow_request(self, request, view) -> bool:
        rate = self.get_rate()
        if not rate:
            return True
        limit, duration = parse_rate(rate)
        allowed, self._wait = count_hit(
            f"{self.scope}:{self.get_ident_for(request)}", limit=limit, duration=duration, now=self.timer()
        )
        return allowed

    def wait(self) -> float | None:
        return self._wait
