"""Validation of failure reports (the ingestion API's request body).

Hand-written rather than a DRF serializer because batch ingestion validates a
thousand items per request and has a throughput target; the OpenAPI schema is
described by the serializers in :mod:`recovery.api.serializers`, and a test keeps
the two in step. Errors are nested like DRF's: ``{"customer": {"phone": ["…"]}}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from recovery.psp import DECLINE_FIELDS, provider_choices, provider_names
from tinko.models import validate_currency, validate_timezone

MAX_FUTURE_SKEW = timedelta(minutes=5)
MAX_AMOUNT = 10**15  # minor units; far above any real payment, well inside BIGINT
METADATA_MAX_KEYS = 50
METADATA_MAX_BYTES = 4096

FAILURE_FIELDS = DECLINE_FIELDS  # a report's "failure" object
TOP_FIELDS = {
    "event_id", "reference", "amount", "currency", "provider", "provider_payment_id", "occurred_at",
    "description", "failure", "customer", "payment_method", "metadata",
}
CUSTOMER_FIELDS = {"id", "email", "phone", "name", "locale", "timezone", "provider_customer_id"}
PAYMENT_METHOD_FIELDS = {"brand", "last4", "exp_month", "exp_year", "fingerprint"}

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_LAST4 = re.compile(r"^\d{4}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class FailureReport:
    reference: str
    amount: int
    currency: str
    provider: str
    occurred_at: datetime
    event_id: str = ""
    provider_payment_id: str = ""
    description: str = ""
    code: str = ""
    decline_code: str = ""
    advice_code: str = ""
    network_advice_code: str = ""
    network_decline_code: str = ""
    message: str = ""
    customer: dict = field(default_factory=dict)
    payment_method: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    # Set by PSP webhooks only: the connected account and what an off-session re-charge needs.
    provider_account_id: int | None = None
    # The account itself when the caller has it (a webhook): spares ingestion a query for it.
    provider_account: object = field(default=None, repr=False, compare=False)
    provider_customer_id: str = ""
    provider_payment_method_id: str = ""
    # The PSP's customer object was read for this report's contact (kept on Tinko's customer: read once).
    customer_fetched: bool = False
    # The PSP's own next automatic attempt (a Stripe invoice's next_payment_attempt).
    provider_retry_at: datetime | None = None


def failure_codes(source) -> dict:
    """The failure's codes and message from anything that has them (a report, a PSP's answer) by name."""
    return {name: getattr(source, name) for name in FAILURE_FIELDS}


class ReportInvalid(Exception):
    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


def _text(errors, data, name, *, max_length, required=False, single_line=True, key=None):
    key = key or name
    value = data.get(name)
    if value is None or value == "":
        if required:
            errors[key] = ["This field is required."]
        return ""
    if not isinstance(value, str):
        errors[key] = ["Must be a string."]
        return ""
    value = value.strip()
    if required and not value:
        errors[key] = ["This field may not be blank."]
    elif len(value) > max_length:
        errors[key] = [f"Ensure this field has no more than {max_length} characters."]
    elif single_line and not value.isprintable() and _CONTROL.search(value):  # control characters are never printable
        errors[key] = ["Must not contain line breaks or control characters."]
    return value


def _int(errors, data, name, *, minimum, maximum, required=False):
    value = data.get(name)
    if value is None:
        if required:
            errors[name] = ["This field is required."]
        return None
    # JSON true/false are ints in Python; 12.0 is a float. Neither is an amount.
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = ["Must be an integer."]
        return None
    if value < minimum or value > maximum:
        errors[name] = [f"Must be between {minimum} and {maximum}."]
        return None
    return value


def _unknown(errors, data, allowed):
    for name in data.keys() - allowed:
        errors[name] = ["Unknown field."]


def parse_report(data, *, now: datetime | None = None) -> FailureReport:
    """Validate one failure report; raise :class:`ReportInvalid` with field errors."""
    if not isinstance(data, dict):
        raise ReportInvalid({"non_field_errors": ["Expected a JSON object."]})
    now = now or timezone.now()
    errors: dict = {}
    _unknown(errors, data, TOP_FIELDS)

    reference = _text(errors, data, "reference", max_length=200, required=True)
    event_id = _text(errors, data, "event_id", max_length=255)
    provider_payment_id = _text(errors, data, "provider_payment_id", max_length=200)
    description = _text(errors, data, "description", max_length=500)
    amount = _int(errors, data, "amount", minimum=1, maximum=MAX_AMOUNT, required=True)

    currency = data.get("currency")
    if currency is None or currency == "":
        errors["currency"] = ["This field is required."]
    elif not isinstance(currency, str):
        errors["currency"] = ["Must be a string."]
    else:
        currency = currency.strip().upper()
        try:
            validate_currency(currency)
        except ValidationError:
            errors["currency"] = [f"'{currency[:10]}' is not an ISO 4217 currency code."]

    provider = data.get("provider")
    if provider is None or provider == "":
        errors["provider"] = ["This field is required."]
    elif provider not in provider_names():
        errors["provider"] = [f"Must be one of: {', '.join(name for name, _ in provider_choices())}."]

    occurred_at = now
    raw_when = data.get("occurred_at")
    if raw_when is not None:
        parsed = parse_datetime(raw_when) if isinstance(raw_when, str) else None
        if parsed is None:
            errors["occurred_at"] = ["Must be an ISO 8601 date-time, e.g. 2026-11-28T09:30:00Z."]
        elif parsed.tzinfo is None:
            errors["occurred_at"] = ["Must include a time-zone offset (Z or +hh:mm)."]
        elif parsed > now + MAX_FUTURE_SKEW:
            errors["occurred_at"] = ["Must not be more than 5 minutes in the future."]
        else:
            occurred_at = parsed

    failure = data.get("failure")
    codes = {}
    if not isinstance(failure, dict):
        errors["failure"] = ["This field is required." if failure is None else "Expected a JSON object."]
    else:
        failure_errors: dict = {}
        _unknown(failure_errors, failure, set(FAILURE_FIELDS))
        for name in FAILURE_FIELDS:
            codes[name] = _text(
                failure_errors, failure, name, max_length=1000 if name == "message" else 100,
                single_line=name != "message",
            )
        if not failure_errors and not any(codes.values()):
            failure_errors["non_field_errors"] = [
                "Give at least one of code, decline_code, advice_code, network_advice_code or message."
            ]
        if failure_errors:
            errors["failure"] = failure_errors

    customer = _customer(errors, data.get("customer"))
    payment_method = _payment_method(errors, data.get("payment_method"))

    metadata = data.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        errors["metadata"] = ["Expected a JSON object."]
    elif len(metadata) > METADATA_MAX_KEYS:
        errors["metadata"] = [f"At most {METADATA_MAX_KEYS} keys."]
    elif len(json.dumps(metadata, separators=(",", ":"))) > METADATA_MAX_BYTES:
        errors["metadata"] = [f"At most {METADATA_MAX_BYTES} bytes of JSON."]

    if errors:
        raise ReportInvalid(errors)
    return FailureReport(
        reference=reference,
        amount=amount,
        currency=currency,
        provider=provider,
        occurred_at=occurred_at,
        event_id=event_id,
        provider_payment_id=provider_payment_id,
        description=description,
        customer=customer,
        payment_method=payment_method,
        metadata=metadata,
        raw=data,
        **codes,
    )


def _customer(errors, value) -> dict:
    from tinko import phones

    if value is None:
        return {}
    if not isinstance(value, dict):
        errors["customer"] = ["Expected a JSON object."]
        return {}
    sub: dict = {}
    _unknown(sub, value, CUSTOMER_FIELDS)
    customer = {
        "id": _text(sub, value, "id", max_length=200),
        "email": _text(sub, value, "email", max_length=254),
        "phone": _text(sub, value, "phone", max_length=phones.MAX_INPUT_LENGTH),
        "name": _text(sub, value, "name", max_length=200),
        "locale": _text(sub, value, "locale", max_length=35),
        "timezone": _text(sub, value, "timezone", max_length=64),
        "provider_customer_id": _text(sub, value, "provider_customer_id", max_length=200),
    }
    if customer["email"] and "email" not in sub:
        try:
            validate_email(customer["email"])
        except ValidationError:
            sub["email"] = ["Enter a valid e-mail address."]
        customer["email"] = customer["email"].lower()
    if customer["phone"] and "phone" not in sub:
        customer["phone"] = phones.normalize(customer["phone"])
        if not customer["phone"]:
            sub["phone"] = ["Enter a valid number with its country code in E.164 form, e.g. +14155550123."]
    if customer["locale"] and "locale" not in sub and not _LOCALE.match(customer["locale"]):
        sub["locale"] = ["Enter a language tag such as en, hi-IN or es-MX."]
    if customer["timezone"] and "timezone" not in sub:
        try:
            validate_timezone(customer["timezone"])
        except ValidationError:
            sub["timezone"] = ["Enter an IANA time zone such as Asia/Kolkata."]
    if sub:
        errors["customer"] = sub
    return customer


def parse_customer(value: dict) -> dict:
    """The fields of a customer description that pass the report's validation; the rest are dropped (blank)."""
    errors: dict = {}
    customer = _customer(errors, value)
    for name in errors.get("customer", {}):
        customer[name] = ""
    return customer


def _payment_method(errors, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors["payment_method"] = ["Expected a JSON object."]
        return {}
    sub: dict = {}
    _unknown(sub, value, PAYMENT_METHOD_FIELDS)
    method = {
        "brand": _text(sub, value, "brand", max_length=20).lower(),
        "last4": _text(sub, value, "last4", max_length=4),
        "exp_month": _int(sub, value, "exp_month", minimum=1, maximum=12),
        "exp_year": _int(sub, value, "exp_year", minimum=2000, maximum=2100),
        "fingerprint": _text(sub, value, "fingerprint", max_length=100),
    }
    if method["last4"] and "last4" not in sub and not _LAST4.match(method["last4"]):
        sub["last4"] = ["Must be the card's last four digits."]
    if sub:
        errors["payment_method"] = sub
    return method
