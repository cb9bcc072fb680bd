from __future__ import annotations

import re

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.test import Client

from tests.accounts.conftest import current_totp, password_login, signed_in_user_id
from tests.conftest import PASSWORD


def confirm_password(client: Client, password: str = PASSWORD) -> None:
    """allauth asks for the password again before security changes; give it."""
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F"
    response = client.post(response["Location"], {"password": password})
    assert response["Location"] == "/accounts/2fa/totp/activate/"


def activate_totp(client: Client) -> tuple[str, str]:
    """Go through the activate-TOTP page as a person with an authenticator app would; return (secret, next URL)."""
    confirm_password(client)
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    # The page shows the secret for manual entry (and as a QR code).
    assert f'id="authenticator_secret" value="{secret}"' in re.sub(r"\s+", " ", page.content.decode())
    response = client.post("/accounts/2fa/totp/activate/", {"code": current_totp(secret)})
    assert response.status_code == 302, response.context["form"].errors
    return secret, response["Location"]


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**len(code):0{len(code)}d}"


def test_enabling_totp_asks_for_a_code_at_the_next_sign_in(owner, org):
    client, _ = password_login("owner@acme.test")
    secret, next_url = activate_totp(client)

    assert Authenticator.objects.filter(user=owner, type=Authenticator.Type.TOTP).exists()
    assert next_url == "/accounts/2fa/recovery-codes/"

    browser, response = password_login("owner@acme.test")
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert signed_in_user_id(browser) is None
    assert b"Please enter an authenticator code" in browser.get("/accounts/2fa/authenticate/").content

    code = current_totp(secret)
    wrong = browser.post("/accounts/2fa/authenticate/", {"code": other_code(code)})
    assert wrong.status_code == 200
    assert wrong.context["form"].errors["code"] == ["Incorrect code."]
    assert signed_in_user_id(browser) is None

    response = browser.post("/accounts/2fa/authenticate/", {"code": code})
    assert response.status_code == 302
    assert response["Location"] == "/console/"
    assert signed_in_user_id(browser) == str(owner.pk)


def test_enabling_totp_generates_recovery_codes_that_also_sign_in(owner, org):
    client, _ = password_login("owner@acme.test")
    _, next_url = activate_totp(client)

    recovery = Authenticator.objects.get(user=owner, type=Authenticator.Type.RECOVERY_CODES)
    codes = recovery.wrap().get_unused_codes()
    assert len(codes) == 10
    page = client.get(next_url).content.decode()
    assert all(code in page for code in codes)

    browser, _ = password_login("owner@acme.test")
    response = browser.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert response["Location"] == "/console/"
    assert signed_in_user_id(browser) == str(owner.pk)
    assert codes[0] not in Authenticator.objects.get(pk=recovery.pk).wrap().get_unused_codes()


def test_activating_totp_with_a_wrong_code_is_a_form_error(owner, org):
    client, _ = password_login("owner@acme.test")
    confirm_password(client)
    client.get("/accounts/2fa/totp/activate/")
    code = current_totp(client.session[SECRET_SESSION_KEY])

    response = client.post("/accounts/2fa/totp/activate/", {"code": other_code(code)})

    assert response.status_code == 200
    assert response.context["form"].errors["code"] == ["Incorrect code."]
    assert not Authenticator.objects.filter(user=owner).exists()


def test_adding_a_second_factor_needs_the_password_confirmed_first(owner, org):
    # Even right after signing in: whoever finds an unlocked session must not
    # be able to lock the owner out with their own authenticator.
    client, _ = password_login("owner@acme.test")

    response = client.get("/accounts/2fa/totp/activate/")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    wrong = client.post(response["Location"], {"password": "not my password"})
    assert wrong.status_code == 200
    assert wrong.context["form"].errors["password"] == ["Incorrect password."]
    assert client.get("/accounts/2fa/totp/activate/").status_code == 302

    confirm_password(client)
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
