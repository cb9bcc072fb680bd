from django import template

from tinko.currencies import format_amount

register = template.Library()


@register.filter
def money(amount, currency):
    """Minor units → "€19.99"; blank for no amount."""
    if amount is None or not currency:
        return ""
    try:
        return format_amount(int(amount), str(currency))
    except (ValueError, TypeError):
        return f"{amount} {currency}"
