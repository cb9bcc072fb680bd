"""Formatting for the dashboard: money in minor units, rates, durations."""

from __future__ import annotations

from django import template

from tinko.currencies import format_amount

register = template.Library()


@register.filter
def money(amount, currency: str) -> str:
    if amount is None:
        return "—"
    return format_amount(int(amount), currency)


@register.filter
def percent(rate) -> str:
    if rate is None:
        return "—"
    return f"{rate * 100:.1f}%"


@register.filter
def signed_points(rate) -> str:
    """A difference of two rates in percentage points: +12.3 pp."""
    if rate is None:
        return "—"
    return f"{rate * 100:+.1f} pp"


@register.filter
def hours(value) -> str:
    """Whole hours as "5 h" under two days, "3 d 4 h" beyond."""
    if value is None:
        return "—"
    value = int(value)
    if value < 48:
        return f"{value} h"
    days, rest = divmod(value, 24)
    return f"{days} d {rest} h" if rest else f"{days} d"


@register.filter
def signed_percent(change) -> str:
    """A relative change: +12.3% (0.123)."""
    if change is None:
        return "—"
    return f"{change * 100:+.1f}%"
