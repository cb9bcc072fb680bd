"""Phone numbers, read and checked one way everywhere: API reports, console forms, PSP customer records,
settings, and the SMS and WhatsApp channels.

Built on ``phonenumbers`` (Google's libphonenumber metadata): a number is
accepted only when it is valid for its country, not merely the right length.
It must carry its country code (a leading ``+``): Tinko cannot tell which
country a local number belongs to. Spaces, dashes, dots and brackets are
allowed on the way in; what is stored and sent is E.164 (``+14155550123``).
"""

from __future__ import annotations

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MESSAGE = _("Enter a phone number in E.164 form, e.g. +14155550123.")
# Longest input read: E.164's 15 digits and "+", with room for separators ("+91 98765 43210").
MAX_INPUT_LENGTH = 32


def normalize(raw: str) -> str:
    """``raw`` in E.164 when it is a valid number with its country code, else ""."""
    text = (raw or "").strip()
    if not text.startswith("+") or len(text) > MAX_INPUT_LENGTH:
        return ""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_e164(value: str) -> bool:
    """Whether ``value`` is a valid number already written in E.164 (what Tinko stores and sends to)."""
    return bool(value) and normalize(value) == value


def clean(value: str) -> str:
    """For forms and serializers: ``value`` in E.164, "" for blank; ValidationError when it is not a valid number."""
    if not (value or "").strip():
        return ""
    number = normalize(value)
    if not number:
        raise ValidationError(MESSAGE, code="invalid_phone")
    return number


def validate_e164(value: str) -> None:
    """A model field's validator: a stored phone is a valid number written in E.164."""
    if value and not is_e164(value):
        raise ValidationError(MESSAGE, code="invalid_phone")
