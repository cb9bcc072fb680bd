"""People's words for the recovery's codes: ``{{ payment.category|category_label }}`` → "Insufficient funds"."""

from __future__ import annotations

from django import template

from recovery.labels import category_label as _category_label
from recovery.labels import channel_label as _channel_label

register = template.Library()


@register.filter
def category_label(value):
    return _category_label(value)


@register.filter
def channel_label(value):
    return _channel_label(value)
