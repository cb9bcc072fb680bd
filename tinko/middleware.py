from __future__ import annotations

import logging
import re
import time
import uuid
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone, translation

from tinko import logging as tinko_logging
from tinko.tenancy import resolve_membership

# A caller's id is echoed back, so keep it to something safe for headers and logs.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")

access_logger = logging.getLogger("tinko.access")

# Probes hit these every few seconds; at INFO they would drown the real traffic.
_PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class RequestIDMiddleware:
    """Honour an incoming ``X-Request-ID`` (or make one), expose it to logs and echo it back.

    Also writes the access log: one line per request with method, path (never
    the query string, and with URL secrets masked: see tinko.logging), status
    and duration.
    """

    header = "HTTP_X_REQUEST_ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        incoming = request.META.get(self.header, "")
        # fullmatch: "$" would let a trailing newline through into the response header.
        request_id = incoming if _REQUEST_ID_RE.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = tinko_logging.request_id_var.set(request_id)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            path = tinko_logging.loggable_path(request)
            access_logger.log(
                logging.DEBUG if request.path in _PROBE_PATHS else logging.INFO,
                "%s %s %s %.1fms",
                request.method,
                path,
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
            return response
        finally:
            tinko_logging.request_id_var.reset(token)


class MalformedRequestMiddleware:
    """A NUL character in the path or the query string is a 400 before any view runs.

    No address of ours has one, and PostgreSQL refuses it in every text
    parameter: a lookup by such a reference or token would fail with a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        # The path arrives decoded; the query string still percent-encoded.
        if "\x00" in request.path or "\x00" in query or "%00" in query:
            from django.http import JsonResponse

            from tinko.api.exceptions import error_body

            reason = "The address contains a NUL character."
            if request.path_info.startswith("/api/"):
                return JsonResponse(error_body(type="bad_request", message=reason, request=request), status=400)
            return JsonResponse({"error": reason}, status=400)
        return self.get_response(request)


class CurrentOrganizationMiddleware:
    """Attach ``request.membership`` and ``request.organization`` (None when signed out or org-less).

    Resolved once per request for signed-in users (one query); API requests
    carry no session and skip it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        membership = resolve_membership(request)
        request.membership = membership
        request.organization = membership.organization if membership else None
        if request.organization is None:
            return self.get_response(request)
        # Console dates read in the organization's time zone, wherever they are rendered.
        timezone.activate(ZoneInfo(request.organization.timezone or "UTC"))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class UserLanguageMiddleware:
    """The signed-in person's chosen language wins over the browser's (LocaleMiddleware's choice).

    Placed after AuthenticationMiddleware. Blank ``User.language`` keeps the
    browser's Accept-Language (or the language cookie) as LocaleMiddleware read it.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.codes = {code for code, _name in settings.LANGUAGES}

    def __call__(self, request):
        user = getattr(request, "user", None)
        language = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
        if language in self.codes:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
