"""Every allauth page renders inside Tinko's layout, not allauth's bare default one."""

from __future__ import annotations

import re

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client

from tests.accounts.conftest import password_login
from tests.conftest import PASSWORD, login, make_user

ENTRANCE = "entrance"
MANAGE = "manage"


def anonymous(path):
    return lambda user: (Client(), path)


def signed_in(path):
    return lambda user: (login(user), path)


def confirmed(path, *, mfa=False):
    """Signed in and having just confirmed the password, as security pages require."""

    def setup(user):
        if mfa:
            enable_mfa(user)
        client = login(user)
        response = client.post("/accounts/reauthenticate/", {"password": PASSWORD})
        assert response.status_code == 302, response.content
        return client, path

    return setup


def enable_mfa(user):
    TOTP.activate(user, generate_totp_secret())
    RecoveryCodes.activate(user)


def with_mfa(path):
    def setup(user):
        enable_mfa(user)
        return login(user), path

    return setup


def reset_key_form(user):
    client = Client()
    key_url = f"/accounts/password/reset/key/{user_pk_to_url_str(user)}-{default_token_generator.make_token(user)}/"
    response = client.get(key_url)
    assert response.status_code == 302  # allauth swaps the key in the URL for one in the session
    return client, response["Location"]


def confirm_email_page(user):
    address = EmailAddress.objects.get(user=make_user("unverified@acme.test", verified=False))
    return Client(), f"/accounts/confirm-email/{EmailConfirmationHMAC(address).key}/"


def mfa_authenticate(user):
    enable_mfa(user)
    client, response = password_login(user.email)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    return client, "/accounts/2fa/authenticate/"


PAGES = [
    ("login", ENTRANCE, anonymous("/accounts/login/")),
    ("signup", ENTRANCE, anonymous("/accounts/signup/")),
    ("password_reset", ENTRANCE, anonymous("/accounts/password/reset/")),
    ("password_reset_done", ENTRANCE, anonymous("/accounts/password/reset/done/")),
    ("password_reset_from_key", ENTRANCE, reset_key_form),
    ("password_reset_from_key_done", ENTRANCE, anonymous("/accounts/password/reset/key/done/")),
    ("verification_sent", ENTRANCE, anonymous("/accounts/confirm-email/")),
    ("email_confirm", ENTRANCE, confirm_email_page),
    ("account_inactive", ENTRANCE, anonymous("/accounts/inactive/")),
    ("mfa_authenticate", ENTRANCE, mfa_authenticate),
    ("reauthenticate", ENTRANCE, signed_in("/accounts/reauthenticate/")),
    ("mfa_reauthenticate", ENTRANCE, with_mfa("/accounts/2fa/reauthenticate/")),
    ("email", MANAGE, signed_in("/accounts/email/")),
    ("password_change", MANAGE, signed_in("/accounts/password/change/")),
    ("logout", MANAGE, signed_in("/accounts/logout/")),
    ("mfa_index", MANAGE, signed_in("/accounts/2fa/")),
    ("mfa_index_with_totp", MANAGE, with_mfa("/accounts/2fa/")),
    ("mfa_activate_totp", MANAGE, confirmed("/accounts/2fa/totp/activate/")),
    ("mfa_deactivate_totp", MANAGE, confirmed("/accounts/2fa/totp/deactivate/", mfa=True)),
    ("mfa_recovery_codes", MANAGE, confirmed("/accounts/2fa/recovery-codes/", mfa=True)),
    ("mfa_generate_recovery_codes", MANAGE, confirmed("/accounts/2fa/recovery-codes/generate/", mfa=True)),
]


@pytest.mark.parametrize(
    ("layout", "setup"), [(layout, setup) for _, layout, setup in PAGES], ids=[name for name, _, _ in PAGES]
)
def test_allauth_page_renders_in_tinko_layout(owner, org, layout, setup):
    client, path = setup(owner)

    response = client.get(path)

    assert response.status_code == 200, response.get("Location")
    html = response.content.decode()
    assert '<link rel="stylesheet" href="/static/tinko/tinko.css">' in html
    assert re.search(r"<title>[^<]*· Tinko</title>", html)
    assert "<h1" in html
    # allauth's own default layout prints a bare "Menu:" list; ours never does.
    assert "Menu:" not in html
    if layout == ENTRANCE:
        assert '<div class="entrance-card">' in html
        assert '<p class="brand"><a href="/">Tinko</a></p>' in html
    else:
        assert '<header class="topbar">' in html
        assert '<a class="brand" href="/console/">Tinko</a>' in html
        assert '<p class="nav-heading">Your account</p>' in html


def test_account_nav_marks_the_current_page(owner_client):
    html = owner_client.get("/accounts/password/change/").content.decode()

    assert '<a href="/accounts/password/change/" aria-current="page">Password</a>' in html
    assert '<a href="/accounts/email/">E-mail addresses</a>' in html


def test_form_errors_render_with_our_error_styles(db):
    response = Client().post("/accounts/login/", {"login": "nobody@acme.test", "password": "wrong password"})

    assert '<ul class="errorlist nonfield"' in response.content.decode()
