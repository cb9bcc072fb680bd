"""Dates, times, numbers and money for people, in the active language (CLDR data through Babel).

The console shows times in the organization's time zone (CurrentOrganizationMiddleware activates
it) and in the language the person chose (UserLanguageMiddleware); these functions read both from
Django's active settings unless told otherwise, so templates and Python render the same text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_decimal
from django.utils import timezone, translation

from tinko.currencies import format_amount


@lru_cache(maxsize=64)
def babel_locale(language: str | None = None) -> Locale:
    """The Babel locale for a Django language code ("en", "hi", "es-mx"); English when it has none."""
    code = (language or "en").replace("-", "_")
    try:
        return Locale.parse(code)
    except (UnknownLocaleError, ValueError, TypeError):
        try:
            return Locale.parse(code.split("_")[0])
        except (UnknownLocaleError, ValueError, TypeError):
            return Locale.parse("en")


def _locale(language: str | None) -> Locale:
    return babel_locale(language or translation.get_language() or "en")


def format_when(value: datetime | None, *, tz: tzinfo | None = None, language: str | None = None,
                zone: bool = False, seconds: bool = False) -> str:
    """"Dec 3, 2026, 7:48 AM" (en), "3 dic 2026, 7:48" (es): to the minute, in ``tz`` or the active zone.

    ``seconds=True`` for logs ("7:48:35 AM"); ``zone=True`` adds the zone's name, for text read
    outside the console ("… (India Standard Time)").
    """
    if value is None:
        return ""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(tz or timezone.get_current_timezone())
    locale = _locale(language)
    text = locale.datetime_formats["medium"].format(
        format_time(local, "medium" if seconds else "short", tzinfo=local.tzinfo, locale=locale),
        format_date(local.date(), "medium", locale=locale),
    )
    if zone:
        text = f"{text} ({format_datetime(local, 'zzzz', tzinfo=local.tzinfo, locale=locale)})"
    return text


def format_day(value: date | datetime | None, *, tz: tzinfo | None = None, language: str | None = None) -> str:
    """"Dec 3, 2026": a calendar day (a datetime's day in ``tz`` or the active zone)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(tz or timezone.get_current_timezone()).date()
    return format_date(value, "medium", locale=_locale(language))


def format_number(value, *, language: str | None = None) -> str:
    """1234567 → "1,234,567" (en), "12,34,567" (hi), "1.234.567" (es)."""
    if value is None or value == "":
        return ""
    return format_decimal(value, locale=_locale(language))


def format_money(amount: int | None, currency: str, *, language: str | None = None) -> str:
    """Minor units to "$49.99" (en), "49,99 US$" (es); blank for no amount."""
    if amount is None or not currency:
        return ""
    return format_amount(int(amount), str(currency), locale=str(_locale(language)))


def format_language(code: str, *, language: str | None = None) -> str:
    """A locale code in words, in the reader's language: "hi-IN" → "Hindi (India)" (en), "hindi (India)" (es)."""
    if not code:
        return ""
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name(_locale(language))
    except (UnknownLocaleError, ValueError, TypeError):
        return code
    return name[:1].upper() + name[1:] if name else code


def english(text) -> str:
    """A label in English, for text Tinko stores (reasons, outcomes): the same whoever's request wrote it."""
    if isinstance(text, str) or translation.get_language() == "en":
        return str(text)  # nothing to translate, or English already (switching costs ~75 µs a label)
    with translation.override("en"):
        return str(text)
