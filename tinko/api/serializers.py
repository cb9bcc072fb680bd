"""Response shapes of the API. Read-only: writes go through tinko.services."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from tinko.api.exceptions import ERROR_TYPES
from tinko.models import ApiKey, Organization


class OrganizationSerializer(serializers.ModelSerializer):
    # Plain strings rather than the model's choices: a list of every currency
    # in the schema would say less than "ISO 4217".
    timezone = serializers.CharField(read_only=True, help_text="IANA time zone, e.g. Europe/Berlin.")
    default_currency = serializers.CharField(read_only=True, help_text="ISO 4217 code, e.g. EUR.")

    class Meta:
        model = Organization
        fields = ["slug", "name", "timezone", "default_currency"]
        read_only_fields = fields


class ApiKeySerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(
        source="display_prefix", read_only=True, help_text="The start of the key, as the console shows it."
    )

    class Meta:
        model = ApiKey
        fields = ["name", "prefix", "created_at"]
        read_only_fields = fields


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Example",
            value={
                "organization": {"slug": "acme", "name": "Acme", "timezone": "Europe/Berlin", "default_currency": "EUR"},
                "api_key": {"name": "Production server", "prefix": "tk_3f9a2b7c", "created_at": "2025-01-31T09:30:00Z"},
            },
            response_only=True,
        )
    ]
)
class MeSerializer(serializers.Serializer):
    """The organization an API key acts for, and the key itself."""

    # Serializes an ApiKey: the organization is the key's, the key is the instance.
    organization = OrganizationSerializer()
    api_key = ApiKeySerializer(source="*")


@extend_schema_field({
    "type": "object",
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object", "additionalProperties": True}],
    },
})
class FieldErrorsField(serializers.DictField):
    """Field name → messages, or → the same for a nested object's fields."""


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text="Stable machine-readable code. Current values: " + ", ".join(ERROR_TYPES) + "; more may be added."
    )
    message = serializers.CharField(help_text="What went wrong, for people.")
    fields = FieldErrorsField(
        required=False,
        help_text=(
            "Validation errors only: each invalid input field with its messages; a nested object's field "
            "(`customer`, `failure`, `steps`) maps to an object of the same shape."
        ),
    )
    request_id = serializers.CharField(required=False, help_text="Same as the X-Request-ID response header.")


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    error = ErrorDetailSerializer()
