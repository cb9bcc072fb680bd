"""What every inbound webhook endpoint (PSPs, ESPs, Twilio) does before it looks at a request.

* A rate limit per client address (``TINKO_WEBHOOK_RATE``): 429 with Retry-After.
* Input that cannot be read (a body Django refuses, too many fields, bytes
  that are not text) is a JSON 400 with the reason, never a 500.
* Bodies over a limit are not read whole (:func:`read_body`).

Answers are ``{"error": "<reason>"}`` (or ``{"detail": …}`` on success), the
shape the PSP inbox has always used.
"""

from __future__ import annotations

import logging
import math
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
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
