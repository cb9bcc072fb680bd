from rest_framework.throttling import SimpleRateThrottle

from tinko.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per-key request rate (TINKO_API_RATE); unauthenticated requests are throttled by address."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
