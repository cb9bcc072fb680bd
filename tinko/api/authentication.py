"""API-key authentication: ``Authorization: Bearer tk_<prefix>_<secret>``."""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from tinko.ratelimit import count_hit
from tinko.models import ApiKey, hash_token
from tinko.services import client_ip

# last_used_at is for humans ("used 3 minutes ago"); writing it on every
# request would turn each API read into a write, so refresh it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Real keys are about 55 characters; longer input is refused before hashing.
MAX_KEY_LENGTH = 200
# Throttles run after authentication, so requests with wrong keys would never
# be limited: count failures per address here and answer 429 past the limit.
FAILED_AUTH_LIMIT = 30
FAILED_AUTH_WINDOW = 60


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        # The key is checked before the address limit: many merchants may share
        # one address (an office NAT, a hosting provider's egress), and someone
        # else's bad keys must not lock out a valid one. A valid key is limited
        # by its own per-key throttle instead.
        try:
            return self._authenticate(request)
        except exceptions.AuthenticationFailed:
            ident = f"auth_failed:ip:{client_ip(request) or 'unknown'}"
            within_limit, wait = count_hit(ident, limit=FAILED_AUTH_LIMIT, duration=FAILED_AUTH_WINDOW)
            if not within_limit:
                raise exceptions.Throttled(
                    wait, detail="Too many requests with invalid API keys from this address."
                ) from None
            raise

    def _authenticate(self, request):
        try:
            header = authentication.get_authorization_header(request)
            text = header.decode("ascii")
        except (UnicodeEncodeError, UnicodeDecodeError):
            # Keys are ASCII; anything else is a garbled header, not a key to look up.
            raise exceptions.AuthenticationFailed("Malformed Authorization header: it must be ASCII.") from None
        if not text:
            return None
        scheme, _, key = text.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        key = key.strip()
        # The secret itself may contain "_", so split off the first two parts only.
        parts = key.split("_", 2)
        if (
            len(key) > MAX_KEY_LENGTH
            or len(parts) != 3
            or parts[0] != "tk"
            or len(parts[1]) != ApiKey.PREFIX_LENGTH
            or not parts[2]
        ):
            raise exceptions.AuthenticationFailed("Malformed API key: expected tk_<prefix>_<secret>.")
        api_key = ApiKey.objects.select_related("organization").filter(prefix=parts[1]).first()
        # Compare in constant time even when the prefix is unknown.
        expected = api_key.key_hash if api_key else "0" * 64
        if not hmac.compare_digest(expected, hash_token(key)) or api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        request.organization = api_key.organization
        return (None, api_key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tinko.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tk_<prefix>_<secret>",
            "description": "An API key created in the console under Developers → API keys.",
        }
