"""The names people read for the recovery's codes (categories, channels), one place for every page and export."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from recovery.models import Category, Channel

# How a recovery ended, beyond the channels an attempt uses.
_RECOVERED_THROUGH = {
    "link": _("Pay link"),
    "other": _("Without Tinko"),
}


def category_label(value: str) -> str:
    """"insufficient_funds" → "Insufficient funds"; blank stays blank, an unknown code is shown as it is."""
    if not value:
        return ""
    try:
        return Category(value).label
    except ValueError:
        return value


def step_key_label(key: str) -> str:
    """A key of a policy's steps: a category's name, or "Lost, stolen or picked-up card"."""
    if key == "lost_or_stolen":
        return _("Lost, stolen or picked-up card")
    return category_label(key)


def channel_label(value: str) -> str:
    """"psp" → "Automatic re-charge", "email" → "Email", "link" → "Pay link"."""
    if not value:
        return ""
    if value in _RECOVERED_THROUGH:
        return _RECOVERED_THROUGH[value]
    try:
        return Channel(value).label
    except ValueError:
        return value
