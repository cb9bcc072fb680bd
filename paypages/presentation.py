"""What a pay page says: the language, the amount in the customer's locale, copy that fits the decline."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from tinko.currencies import format_amount

LANGUAGE_CODES = [code for code, _name in settings.LANGUAGES]

# The decline decides what the customer is asked to do.
UPDATE_CARD = "update_card"
AUTHENTICATE = "authenticate"
PAY_NOW = "pay_now"

_COPY_BY_CATEGORY = {
    "expired_card": UPDATE_CARD,
    "invalid_card": UPDATE_CARD,
    "card_declined": UPDATE_CARD,
    "fraud_or_stolen": UPDATE_CARD,
    "do_not_retry": UPDATE_CARD,
    "authentication_required": AUTHENTICATE,
}

COPY = {
    UPDATE_CARD: {
        "heading": _("Your card didn't go through"),
        "body": _("Your bank declined the last payment. Pay with another card, or update your card details, to keep things going."),
        "button": _("Pay with another card"),
    },
    AUTHENTICATE: {
        "heading": _("Confirm this payment with your bank"),
        "body": _("Your bank needs you to approve this payment. It takes a moment: you will be asked to confirm it in your banking app or with a code."),
        "button": _("Confirm and pay"),
    },
    PAY_NOW: {
        "heading": _("Your payment is due"),
        "body": _("We couldn't collect your last payment. You can pay it now in a few seconds."),
        "button": _("Pay now"),
    },
}


def copy_for(category: str) -> dict:
    return COPY[_COPY_BY_CATEGORY.get(category, PAY_NOW)]


def copy_kind(category: str) -> str:
    return _COPY_BY_CATEGORY.get(category, PAY_NOW)


def _base_language(locale: str) -> str:
    return (locale or "").replace("_", "-").split("-")[0].lower()


def choose_language(request, customer) -> str:
    """``?lang=`` when the customer switched, else their locale, else their browser's, else English."""
    asked = request.GET.get("lang") or request.POST.get("lang") or ""
    if asked in LANGUAGE_CODES:
        return asked
    if customer is not None and _base_language(customer.locale) in LANGUAGE_CODES:
        return _base_language(customer.locale)
    from_browser = translation.get_language_from_request(request)
    return from_browser if from_browser in LANGUAGE_CODES else settings.LANGUAGE_CODE


def amount_locale(language: str, customer) -> str:
    """A Babel locale for the amount: the customer's own (hi-IN → hi_IN) when it fits the page's language."""
    locale = (customer.locale if customer is not None else "") or ""
    if _base_language(locale) == language:
        try:
            return str(Locale.parse(locale.replace("-", "_")))
        except (UnknownLocaleError, ValueError, TypeError):
            pass
    return language


def amount_text(amount: int, currency: str, *, language: str, customer) -> str:
    return format_amount(amount, currency, locale=amount_locale(language, customer))


def first_name(customer) -> str:
    """The only personal detail a pay page shows."""
    name = (customer.name if customer is not None else "") or ""
    return name.split()[0] if name.split() else ""


def ink_for(hex_colour: str) -> str:
    """Black or white text, whichever reads better on ``hex_colour`` (WCAG relative luminance)."""
    try:
        r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    except (ValueError, TypeError, IndexError):
        return "#ffffff"

    def channel(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    # Contrast with white (1.05 / (L + 0.05)) against black ((L + 0.05) / 0.05).
    return "#ffffff" if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05 else "#111111"
