"""Template filters for people: ``when``, ``day``, ``number``; ``copyable`` for long identifiers."""

from __future__ import annotations

from django import template

from tinko import formatting

register = template.Library()


@register.filter
def when(value, precision=""):
    """A moment to the minute, in the active time zone and language: "Dec 3, 2026, 7:48 AM".

    ``|when:"seconds"`` for logs: "Dec 3, 2026, 7:48:35 AM".
    """
    try:
        return formatting.format_when(value, seconds=precision == "seconds")
    except (AttributeError, TypeError, ValueError):
        return value


@register.filter
def day(value):
    """A calendar day in the active language: "Dec 3, 2026"."""
    try:
        return formatting.format_day(value)
    except (AttributeError, TypeError, ValueError):
        return value


@register.filter
def number(value):
    """A count with the language's grouping: "1,234,567"."""
    try:
        return formatting.format_number(value)
    except (TypeError, ValueError, ArithmeticError):
        return value


@register.inclusion_tag("partials/copyable.html")
def copyable(value, truncate=False, label=""):
    """A long identifier shown in monospace that wraps (or is cut short with ``truncate``), with a Copy button.

    ``label`` names what is copied for screen readers ("webhook URL"); the button says "Copy".
    """
    return {"value": "" if value is None else str(value), "truncate": truncate, "label": label}
