"""Helpers for the account tests: delivered mail, real sign-ins, TOTP codes."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from django.test import Client

from tests.conftest import PASSWORD

SIGNUP_PASSWORD = "plum-orbit-Ladder-72"


@pytest.fixture
def deliver(run_jobs, django_capture_on_commit_callbacks):
    """``with deliver(): ...`` runs the block, then sends the mail it queued (as the worker would)."""

    @contextmanager
    def capture():
        with django_capture_on_commit_callbacks(execute=True):
            yield
        run_jobs()

    return capture


def link_in(message, path_pattern: str) -> str:
    """The path of the first link in ``message`` whose path matches ``path_pattern``."""
    match = re.search(r"https?://testserver(" + path_pattern + r")", message.body)
    assert match, f"no link matching {path_pattern!r} in:\n{message.body}"
    return match.group(1)


def only_mail_to(address: str):
    messages = [m for m in mail.outbox if address in m.to]
    assert len(messages) == 1, [(m.to, m.subject) for m in mail.outbox]
    return messages[0]


def password_login(email: str, password: str = PASSWORD, *, client: Client | None = None, **extra):
    """Sign in through allauth's form (unlike force_login this records a real authentication)."""
    client = client or Client()
    response = client.post("/accounts/login/", {"login": email, "password": password, **extra})
    return client, response


def signed_in_user_id(client: Client):
    return client.session.get("_auth_user_id")


def current_totp(secret: str) -> str:
    """The code an authenticator app shows now (RFC 6238), computed with allauth's HOTP."""
    period = mfa_settings.TOTP_PERIOD
    # allauth accepts only the current period (no tolerance): never hand out a
    # code that expires before the request that carries it is handled.
    if period - time.time() % period < 2:
        time.sleep(period - time.time() % period + 0.1)
    return format_hotp_value(hotp_value(secret, int(time.time()) // period))
