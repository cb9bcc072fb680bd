"""Encryption of secrets at rest: TOTP seeds, PSP credentials, webhook signing secrets, pay-link
tokens, and the text of stored e-mails and messages (``manage.py reencrypt_secrets`` lists each field).

Keys come from TINKO_ENCRYPTION_KEYS: Fernet keys, comma-separated, newest
first. New values are encrypted with the newest; every listed key decrypts, so
a key can be rotated in by listing it first, running
``manage.py reencrypt_secrets``, and only then dropping the old one.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["InvalidToken", "decrypt", "encrypt", "generate_key", "reencrypt"]


def generate_key() -> str:
    return Fernet.generate_key().decode()


def local_mode_key(secret_key: str) -> str:
    """A key derived from SECRET_KEY, for local mode only (production must list real keys)."""
    digest = hashlib.sha256(b"tinko-local-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def parse_keys(keys: list[str]) -> list[Fernet]:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.strip()))
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise ImproperlyConfigured(
                f"TINKO_ENCRYPTION_KEYS: key {position} is not a Fernet key "
                "(generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
    return fernets


@cache
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet(parse_keys(list(keys)))


def _fernet() -> MultiFernet:
    keys = tuple(settings.TINKO_ENCRYPTION_KEYS)
    if not keys:
        raise ImproperlyConfigured("TINKO_ENCRYPTION_KEYS is empty: secrets cannot be stored.")
    return _multi_fernet(keys)


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """Raise InvalidToken when no listed key opens ``token``."""
    return _fernet().decrypt(token.encode()).decode()


def reencrypt(token: str) -> str:
    """The same secret under the newest key (unchanged if already so)."""
    return _fernet().rotate(token.encode()).decode()
