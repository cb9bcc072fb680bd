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


@register.filter
def steps_summary(steps):
    """A policy's steps counted: "16 re-charges, 20 messages"."""
    from django.utils.translation import gettext

    from recovery.steps import MESSAGE, RECHARGE

    steps = steps or {}
    recharges = sum(1 for key in steps for s in steps[key] or [] if s.get("action") == RECHARGE)
    messages = sum(1 for key in steps for s in steps[key] or [] if s.get("action") == MESSAGE)
    return gettext("%(recharges)s re-charges, %(messages)s messages") % {"recharges": recharges, "messages": messages}
