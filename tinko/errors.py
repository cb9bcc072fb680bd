"""What a request gets when something underneath it is down.

Django calls :func:`server_error` (``handler500``) for any exception a view or
middleware did not handle, inside the ``except`` block, so the exception is at
hand. A database that cannot be reached (stopped, restarting, failing over) or
a lock that could not be had in time is not a bug of ours: the caller gets a
fast 503 with ``Retry-After`` (JSON, or a short page for a browser), and a PSP
or a client retries. Everything else keeps the ordinary 500, with no detail.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.views import defaults

from tinko.api.exceptions import error_body, error_for_status

# Seconds a client should wait before trying again.
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable. Try again shortly."
_MACHINE_PREFIXES = ("/api/", "/webhooks/")


def is_outage(exc: BaseException | None) -> bool:
    """Whether ``exc`` means the database is unreachable or busy (not a fault in the request or our code)."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    # SQLite reports a missing table or column (a migration not run) as an OperationalError too: a fault, not an outage.
    return not str(exc).startswith("no such ")


def unavailable(request) -> HttpResponse:
    """503 with Retry-After: JSON for APIs, webhooks and anything not asking for HTML."""
    wants_html = "text/html" in request.headers.get("Accept", "") and not request.path_info.startswith(_MACHINE_PREFIXES)
    if wants_html:
        # A static page: rendering must not need the database that is down.
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
    else:
        response = JsonResponse(
            error_body(type="service_unavailable", message=UNAVAILABLE_MESSAGE, request=request),
            status=503,
            json_dumps_params={"separators": (",", ":")},
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request, template_name="500.html"):
    if is_outage(sys.exc_info()[1]):
        return unavailable(request)
    return defaults.server_error(request, template_name=template_name)


def not_found(request, exception=None):
    """404: JSON for APIs and webhooks, rendered without a template (nothing there can fail); Django's page otherwise."""
    if request.path_info.startswith(_MACHINE_PREFIXES):
        return JsonResponse(error_for_status(404, request), status=404, json_dumps_params={"separators": (",", ":")})
    return defaults.page_not_found(request, exception)
