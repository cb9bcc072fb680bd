"""One error shape for the whole API.

Every error under ``/api/`` is a JSON object::

    {"error": {"type": "authentication_failed", "message": "Invalid API key.",
               "fields": {...}, "request_id": "..."}}

``type`` is a stable machine-readable code, ``message`` is for humans, ``fields``
(validation errors only) maps each input field to its messages, ``request_id``
matches the ``X-Request-ID`` response header. DRF exceptions are shaped here
(settings ``EXCEPTION_HANDLER``); errors Django answers itself (an unknown
path, an unhandled exception) are reshaped by :mod:`tinko.api.middleware`.
"""

from __future__ import annotations

import math
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

# DRF exception code → the ``type`` clients see. A missing key and a bad key
# share one type: either way the client must fix its credentials.
_DRF_TYPES = {
    "not_authenticated": "authentication_failed",
    "authentication_failed": "authentication_failed",
    "permission_denied": "permission_denied",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "not_acceptable": "not_acceptable",
    "unsupported_media_type": "unsupported_media_type",
    "parse_error": "parse_error",
    "throttled": "throttled",
    "invalid": "validation_error",
}

# For error responses that did not come from DRF (Django's own 404/500, a 405
# from a plain view): status → (type, message).
_STATUS_TYPES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("authentication_failed", "Authentication is required."),
    403: ("permission_denied", "You do not have permission to do this."),
    404: ("not_found", "There is no API endpoint at this path."),
    405: ("method_not_allowed", "This method is not allowed on this endpoint."),
    413: ("request_too_large", "The request body is too large."),
    429: ("throttled", "Too many requests."),
    500: ("server_error", "Something went wrong on our side. Quote the request id if you contact support."),
    502: ("service_unavailable", "The service is temporarily unavailable. Try again shortly."),
    503: ("service_unavailable", "The service is temporarily unavailable. Try again shortly."),
    504: ("service_unavailable", "The service is temporarily unavailable. Try again shortly."),
}

MISSING_KEY_MESSAGE = "Missing API key: send the header 'Authorization: Bearer <API key>'."

# Listed in the OpenAPI schema (ErrorDetail.type) so clients know what to switch on.
ERROR_TYPES = sorted({*_DRF_TYPES.values(), *(t for t, _ in _STATUS_TYPES.values())})


def error_body(*, type: str, message: str, request=None, fields: dict | None = None) -> dict:
    error = {"type": type, "message": message}
    if fields:
        error["fields"] = fields
    request_id = getattr(request, "request_id", None)
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def error_for_status(status: int, request=None) -> dict:
    if status in _STATUS_TYPES:
        type, message = _STATUS_TYPES[status]
    else:
        type = "server_error" if status >= 500 else "bad_request"
        try:
            message = HTTPStatus(status).phrase + "."
        except ValueError:
            message = "The request failed."
    return error_body(type=type, message=message, request=request)


def _first_message(detail) -> str:
    """The first human message in a nested DRF error detail."""
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_message(value)
        return ""
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else ""
    return str(detail)


def exception_handler(exc, context):
    """DRF's handler (status, WWW-Authenticate, Retry-After, rollback), then our body shape."""
    response = drf_exception_handler(exc, context)
    if response is None:
        # Not an API error: Django logs it and answers 500, which the API
        # middleware turns into JSON.
        return None
    request = context.get("request")
    if isinstance(exc, Http404):
        code = "not_found"
    elif isinstance(exc, DjangoPermissionDenied):
        code = "permission_denied"
    else:
        code = exc.default_code
    type = _DRF_TYPES.get(code, code)

    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = exc.detail
        message = "Some fields are invalid: " + ", ".join(str(f) for f in fields) + "."
        response.data = error_body(type=type, message=message, fields=fields, request=request)
        return response

    if isinstance(exc, exceptions.NotAuthenticated):
        message = MISSING_KEY_MESSAGE
    elif isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        message = f"Too many requests for this API key. Retry in {math.ceil(exc.wait)} seconds."
    else:
        message = _first_message(response.data) or error_for_status(response.status_code)["error"]["message"]
    response.data = error_body(type=type, message=message, request=request)
    return response
