from __future__ import annotations

import re
import uuid

from tinko import logging as tinko_logging
from tinko.tenancy import resolve_membership

# A caller's id is echoed back, so keep it to something safe for headers and logs.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIDMiddleware:
    """Honour an incoming ``X-Request-ID`` (or make one), expose it to logs and echo it back."""

    header = "HTTP_X_REQUEST_ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get(self.header, "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = tinko_logging.request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            tinko_logging.request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


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
        return self.get_response(request)
