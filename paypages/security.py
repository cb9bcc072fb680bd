"""Headers and rate limits for the customer's pay pages.

Pay pages are opened from e-mails and text messages by people who are not
signed in, and carry a secret in their address. So every response:

- tells search engines not to index it and browsers not to send the address
  on (``Referrer-Policy: no-referrer``), and is never cached;
- has a strict Content-Security-Policy (through django-csp, like the console):
  our own CSS and scripts, one inline style block with the response's nonce
  (the merchant's colour), images from
  us and the merchant's logo host, and forms (which may redirect to the PSP)
  only to us and the PSPs' checkout origins.

Rate limits count per client address (tinko.services.client_ip, which honours
TRUSTED_PROXY_COUNT): every pay-page request, and separately the requests for
tokens that do not exist, so guessing tokens is slow and says nothing.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from csp.constants import NONCE, NONE, SELF
from django.shortcuts import render

from tinko import ratelimit
from tinko.services import client_ip

# Where a pay page may send the customer (a form POST answered by a redirect
# counts as the form's target for form-action): the hosted checkouts of the
# PSPs Tinko supports. Stripe Checkout; Razorpay Payment Links (short links on
# rzp.io, pages on razorpay.com / api.razorpay.com).
CHECKOUT_ORIGINS = (
    "https://checkout.stripe.com",
    "https://rzp.io",
    "https://razorpay.com",
    "https://api.razorpay.com",
)


def _origin(url: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(*, image_origin: str = "") -> dict:
    """The pay pages' directives, for django-csp (which puts the response's nonce where NONCE stands)."""
    site = _origin(settings.SITE_URL)
    return {
        "default-src": [NONE],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, *([image_origin] if image_origin else [])],
        "connect-src": [SELF],
        "form-action": list(dict.fromkeys([SELF, *([site] if site else []), *CHECKOUT_ORIGINS])),
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
    }


def note_miss(request) -> None:
    """Count a request for a token that does not exist (guessing, or a mangled link)."""
    ratelimit.hit("pay_miss", client_ip(request) or "unknown", settings.TINKO_PAY_MISS_RATE)


def _too_many_misses(ip: str) -> bool:
    return ratelimit.exceeded("pay_miss", ip, settings.TINKO_PAY_MISS_RATE)


def too_many(request):
    response = render(request, "paypages/too_many.html", {"lang": "en"}, status=429)
    response["Retry-After"] = "60"
    return response


def pay_page(view):
    """Decorate a pay-page view: rate limits first, then the privacy and CSP headers on whatever it answers."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        request.csp_image_origin = ""
        ip = client_ip(request) or "unknown"
        if _too_many_misses(ip) or not ratelimit.hit("pay", ip, settings.TINKO_PAY_RATE)[0]:
            response = too_many(request)
        else:
            response = view(request, *args, **kwargs)
        # Read by django-csp's middleware, which writes the header with this response's nonce.
        response._csp_config = content_security_policy(image_origin=request.csp_image_origin)
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
        response["Cache-Control"] = "no-store, private"
        return response

    return wrapped


def logo_origin(url: str) -> str:
    """The origin a merchant's logo loads from, for img-src (https only)."""
    origin = _origin(url)
    return origin if origin.startswith("https://") else ""
