"""Test settings: production settings (DEBUG off) with a test secret and fast hashing.

DATABASE_URL / REDIS_URL / CACHE_URL come from the environment (`make test`
and `.ci/run` point them at PostgreSQL and Redis).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "k3Y9pQ2vX7mZ4wR8tL6nB1cF5hJ0dG" * 2)
os.environ.setdefault("DEBUG", "false")
# Test-only Fernet key (tinko/crypto.py).
os.environ.setdefault("TINKO_ENCRYPTION_KEYS", "9GhwE_yc6kyZW9Le5rG6b_-0h9f69NrzgBpItAo9mAg=")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("LOG_FORMAT", "text")

from tinko.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
SITE_URL = "http://testserver"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# The API request log writes each row in its own request here, so that a test reads it at once; the
# buffered writer of production is tested on its own (tests/api/test_request_log_buffer.py).
TINKO_API_LOG_FLUSH_MS = 0
