from django import template

from tinko.formatting import format_money

register = template.Library()


@register.filter
def money(amount, currency):
    """Minor units → "€19.99", in the active language's format; blank for no amount."""
    if amount is None or not currency:
        return ""
    try:
        return format_money(int(amount), str(currency))
    except (ValueError, TypeError):
        return f"{amount} {currency}"
