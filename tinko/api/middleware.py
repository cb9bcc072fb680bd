"""JSON instead of HTML for errors Django answers itself under ``/api/``.

DRF views already answer in the API's error shape (tinko.api.exceptions). What
reaches a client from outside DRF is an unknown path (Django's 404), an
unhandled exception (Django's 500), a disallowed host (400) and the like.

A middleware rather than ``handler404``/``handler500``: those handlers are
global to the URLconf, are bypassed when DEBUG is on (the technical pages), and
only cover 400/403/404/500. Rewriting the finished response covers every
status in both modes, and it runs after Django has logged the exception and
signalled it (Sentry), so nothing is lost. It must sit near the top of
MIDDLEWARE so that errors from the middleware below it are rewritten too.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

from tinko.api.exceptions import error_body, error_for_status

API_PREFIX = "/api/"
# Headers that describe the replaced HTML body, not the JSON one.
_DROPPED_HEADERS = {"content-type", "content-length", "content-language"}


def _is_json(response) -> bool:
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path_info.startswith(API_PREFIX)
            and not response.streaming
            and not _is_json(response)
        ):
            return self._as_json(request, response)
        return response

    def process_exception(self, request, exception):
        # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE with a bare 400;
        # say what is wrong, with the status that means it.
        if isinstance(exception, RequestDataTooBig) and request.path_info.startswith(API_PREFIX):
            limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
            return JsonResponse(
                error_body(
                    type="request_too_large",
                    message=f"The request body is larger than {limit_mb} MB. Send fewer or smaller items per request.",
                    request=request,
                ),
                status=413,
                json_dumps_params={"separators": (",", ":")},
            )
        return None

    @staticmethod
    def _as_json(request, response):
        json_response = JsonResponse(
            error_for_status(response.status_code, request),
            status=response.status_code,
            json_dumps_params={"separators": (",", ":")},  # compact, like DRF's renderer
        )
        # Keep what clients rely on (Allow on 405, Retry-After, Vary, ...).
        for header, value in response.headers.items():
            if header.lower() not in _DROPPED_HEADERS:
                json_response[header] = value
        json_response.cookies = response.cookies
        return json_response
