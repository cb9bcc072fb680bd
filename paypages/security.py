"""Headers and rate limits for the customer's pay pages.

Pay pages are opened from e-mails and text messages by people who are not
signed in, and carry a secret in their address. So every response:

- tells search engines not to index it and browsers not to send the address
  on (``Referrer-Policy: no-referrer``), and is never cached;
- has a strict Content-Security-Policy: our own CSS and scripts, one inline
  style block with a per-response nonce (the merchant's colour), images from
  us and the merchant's logo host, and forms (which may redirect to the PSP)
  only to us and the PSPs' checkout origins.

Rate limits count per client address (tinko.services.client_ip, which honours
TRUSTED_PROXY_COUNT): every pay-page request, and separately the requests for
tokens that do not exist, so guessing tokens is slow and says nothing.
"""

from __future__ import annotations

import secrets
import time
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render

from tinko.rates import parse_rate
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


def content_security_policy(*, nonce: str, image_origin: str = "") -> str:
    site = _origin(settings.SITE_URL)
    form_targets = " ".join(dict.fromkeys(["'self'", *([site] if site else []), *CHECKOUT_ORIGINS]))
    images = " ".join(["'self'", *([image_origin] if image_origin else [])])
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            f"img-src {images}",
            "connect-src 'self'",
            f"form-action {form_targets}",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _over_limit(key: str, rate: str) -> bool:
    """Count one hit in a fixed window; True when the window's count is above the rate."""
    limit, period = parse_rate(rate)
    bucket = f"tinko:pay:{key}:{int(time.time() // period)}"
    if cache.add(bucket, 1, timeout=period + 1):
        return 1 > limit
    try:
        return cache.incr(bucket) > limit
    except ValueError:  # expired between add and incr
        cache.add(bucket, 1, timeout=period + 1)
        return False


def _misses_key(ip: str) -> str:
    return f"tinko:pay:misses:{ip}"


def note_miss(request) -> None:
    """Count a request for a token that does not exist (guessing, or a mangled link)."""
    ip = client_ip(request) or "unknown"
    _, period = parse_rate(settings.TINKO_PAY_MISS_RATE)
    key = _misses_key(ip)
    if not cache.add(key, 1, timeout=period):
        try:
            cache.incr(key)
        except ValueError:
            cache.add(key, 1, timeout=period)


def _too_many_misses(ip: str) -> bool:
    limit, _ = parse_rate(settings.TINKO_PAY_MISS_RATE)
    return (cache.get(_misses_key(ip)) or 0) >= limit


def too_many(request):
    response = render(request, "paypages/too_many.html", {"lang": "en"}, status=429)
    response["Retry-After"] = "60"
    return response


def pay_page(view):
    """Decorate a pay-page view: rate limits first, then the privacy and CSP headers on whatever it answers."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        request.csp_nonce = secrets.token_urlsafe(16)
        request.csp_image_origin = ""
        ip = client_ip(request) or "unknown"
        if _too_many_misses(ip) or _over_limit(f"ip:{ip}", settings.TINKO_PAY_RATE):
            response = too_many(request)
        else:
            response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = content_security_policy(
            nonce=request.csp_nonce, image_origin=request.csp_image_origin
        )
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
        response["Cache-Control"] = "no-store, private"
        return response

    return wrapped


def logo_origin(url: str) -> str:
    """The origin a merchant's logo loads from, for img-src (https only)."""
    origin = _origin(url)
    return origin if origin.startswith("https://") else ""
