"""Stripe: a merchant's connected Stripe account (see provider.py). Importing the package registers it."""

from payments.stripe.provider import StripeProvider

__all__ = ["StripeProvider"]
