"""ISO 4217 currencies in circulation today, from CLDR data shipped with Babel.

Amounts everywhere in Tinko are integers in the currency's minor unit; the
exponent (2 for USD, 0 for JPY, 3 for KWD) comes from here too.
"""

from __future__ import annotations

import datetime
from functools import cache, lru_cache

from babel.core import get_global
from babel.numbers import get_currency_name, get_currency_precision, get_territory_currencies


@cache
def active_currency_codes() -> frozenset[str]:
    today = datetime.date.today()
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, today, tender=True))
    return frozenset(codes)


def is_currency(code: str) -> bool:
    return code in active_currency_codes()


def minor_unit_exponent(code: str) -> int:
    return get_currency_precision(code)


CURRENCY_CHOICES = [(code, f"{code} — {get_currency_name(code, locale='en')}") for code in sorted(active_currency_codes())]


def format_amount(amount: int, currency: str, locale: str = "en") -> str:
    """An amount in minor units, formatted for people: format_amount(1999, "EUR") → "€19.99"."""
    if isinstance(amount, int) and isinstance(locale, str):
        return _format_amount_cached(amount, currency, locale)
    return _format_amount(amount, currency, locale)


def _format_amount(amount, currency, locale) -> str:
    from decimal import Decimal

    from babel.numbers import format_currency

    value = Decimal(amount).scaleb(-minor_unit_exponent(currency))
    return format_currency(value, currency, locale=locale)


# Babel's formatting costs ~60 µs an amount, and the dashboard shows ~500 of them, mostly the same
# from one view to the next: a bounded cache (a few MB) keeps them off the page's time.
_format_amount_cached = lru_cache(maxsize=16384)(_format_amount)
