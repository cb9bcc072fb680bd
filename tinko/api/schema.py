"""OpenAPI generation: every operation documents the errors it can answer with."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from tinko.api.exceptions import MISSING_KEY_MESSAGE
from tinko.api.serializers import ErrorSerializer

_WRITE_METHODS = {"POST", "PUT", "PATCH"}


def _error(description: str, type: str, message: str, **extra) -> OpenApiResponse:
    example = {"error": {"type": type, "message": message, **extra, "request_id": "6f1c0e9b2a6d4f1e8c3b5a7d9e0f1a2b"}}
    return OpenApiResponse(ErrorSerializer, description=description, examples=[OpenApiExample(type, value=example)])


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema plus the API's error responses and their headers.

    Views declare their success responses; 401/429 (and 400/404 where they
    can happen) are added here so no endpoint forgets them.
    """

    def get_override_parameters(self):
        return [
            *super().get_override_parameters(),
            OpenApiParameter(
                "WWW-Authenticate", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[401],
                description='The authentication scheme to use: `Bearer realm="api"`.',
            ),
            OpenApiParameter(
                "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429],
                description="Seconds to wait before the next request with this key.",
            ),
        ]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses

    def _error_responses(self) -> dict[str, OpenApiResponse]:
        errors = {}
        if self.method in _WRITE_METHODS:
            errors["400"] = _error(
                "Invalid input.", "validation_error", "Some fields are invalid: amount.",
                fields={"amount": ["Ensure this value is greater than or equal to 1."]},
            )
        auth = self.get_auth()
        if auth and {} not in auth:
            errors["401"] = _error("Missing, malformed, unknown or revoked API key.", "authentication_failed", MISSING_KEY_MESSAGE)
        if "{" in self.path:
            errors["404"] = _error("No such object for this key's organization.", "not_found", "Not found.")
        if self.view.get_throttles():
            errors["429"] = _error("Too many requests for this key.", "throttled", "Too many requests for this API key. Retry in 12 seconds.")
        return errors
