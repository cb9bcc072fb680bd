"""Settings for the benchmarks: production settings (DEBUG off) plus a bench-only urlconf.

The environment is filled in by :mod:`tests.bench.common` before Django starts;
gunicorn and the Dramatiq workers started by the benchmarks inherit it.
"""

import os

# Bench-only secrets, never used anywhere else.
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "Zq8LmV3xT6rN1pW9cK4hJ7bD2fG5sY0a" * 2)
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("TINKO_ENCRYPTION_KEYS", "N8-eQAI0Z24aDNGkOtfcpczfgHh3P0G6PCCw2rXgXTQ=")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
# High enough that the per-key throttle counts every request but never refuses one.
os.environ.setdefault("TINKO_API_RATE", "100000000/min")
# The webhook benchmark's load comes from one address (a PSP sends from many): counted, never refused.
os.environ.setdefault("TINKO_WEBHOOK_RATE", "100000000/min")

from tinko.settings import *  # noqa: E402,F403

# The real URLs plus the bare baseline endpoint (tests/bench/urls.py).
ROOT_URLCONF = "tests.bench.urls"
# The bare Stripe endpoint takes the inbox's path through the middleware, so the two compare like for like.
TINKO_WEBHOOK_SHORTCUT_PREFIXES = [*TINKO_WEBHOOK_SHORTCUT_PREFIXES, "/bench/stripe-verify/"]  # noqa: F405
