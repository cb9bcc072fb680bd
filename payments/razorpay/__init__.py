"""Razorpay: a merchant's connected Razorpay account (see provider.py). Importing the package registers it."""

from payments.razorpay.provider import RazorpayProvider

__all__ = ["RazorpayProvider"]
