"""What every inbound webhook endpoint (PSPs, ESPs, Twilio) does before it looks at a request.

* A rate limit per client address (``TINKO_WEBHOOK_RATE``): 429 with Retry-After.
* Input that cannot be read (a body Django refuses, too many fields, bytes
  that are not text) is a JSON 400 with the reason, never a 500.
* Bodies over a limit are not read whole (:func:`read_body`).
* The PSP inboxes skip the console's middleware (:class:`WebhookShortcutMiddleware`).

Answers are ``{"error": "<reason>"}`` (or ``{"detail": …}`` on success), the
shape the PSP inbox has always used.
"""

from __future__ import annotations

import logging
import math
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.handlers.base import BaseHandler
from django.http import JsonResponse

from tinko import ratelimit
from tinko.services import client_ip

logger = logging.getLogger(__name__)


def json_error(status: int, reason: str, **headers) -> JsonResponse:
    response = JsonResponse({"error": reason}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def read_body(request, *, limit: int, keep: int) -> tuple[bytes, int]:
    """(body, size): the whole body, or only its first ``keep`` bytes when ``Content-Length`` is over ``limit``."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return request.read(keep), length
    try:
        return request.body, length or len(request.body)
    except RequestDataTooBig:
        # No length given and more than Django buffers: nothing of it is kept.
        return b"", settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1


def webhook_endpoint(view):
    """Rate-limit ``view`` per address and answer unreadable input with a JSON 400."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        allowed, wait = ratelimit.hit("webhook", client_ip(request) or "unknown", settings.TINKO_WEBHOOK_RATE)
        if not allowed:
            return json_error(429, "Too many requests from this address.", Retry_After=str(max(1, math.ceil(wait))))
        try:
            return view(request, *args, **kwargs)
        except RequestDataTooBig:
            return json_error(413, "The request body is too large.")
        except SuspiciousOperation as exc:
            # Django's own refusals of a request it cannot read (too many fields, a broken multipart body).
            logger.info("Webhook request refused: %s", type(exc).__name__)
            return json_error(400, "The request could not be read.")

    return wrapped


class WebhookShortcutMiddleware:
    """Requests to the PSP inboxes (``TINKO_WEBHOOK_SHORTCUT_PREFIXES``) go straight to their view from here.

    Placed after the request id and access log, metrics, the NUL check, the API
    log and SecurityMiddleware (HTTPS redirect, HSTS). What follows in
    MIDDLEWARE serves the console and the pay pages (Content-Security-Policy,
    static files, sessions, language, CSRF, sign-in, messages, allauth, htmx,
    the current organization): a PSP's signed JSON POST needs none of it, and
    it cost about 0.3-0.4 ms of the ~1.7 ms of CPU a stored webhook takes in
    process, at hundreds of webhooks a second. Host validation, which
    CommonMiddleware would do, is done here (a wrong Host is a 400). Exceptions
    are answered as everywhere (``handler500``: a database outage is a 503).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        # The innermost step of Django's handler (resolve the URL, call the view) with no middleware of its own.
        handler = BaseHandler()
        handler._view_middleware, handler._template_response_middleware, handler._exception_middleware = [], [], []
        self.view = handler._get_response
        self.prefixes = tuple(settings.TINKO_WEBHOOK_SHORTCUT_PREFIXES)

    def __call__(self, request):
        path = request.path_info
        # Without the trailing slash: the whole stack, whose CommonMiddleware answers as it always has (APPEND_SLASH).
        if self.prefixes and path.startswith(self.prefixes) and path.endswith("/"):
            request.get_host()  # DisallowedHost: 400, as CommonMiddleware would answer
            return self.view(request)
        return self.get_response(request)
