from __future__ import annotations

from django.core import mail
from django.test import Client

from tests.accounts.conftest import link_in, only_mail_to, password_login, signed_in_user_id
from tests.conftest import PASSWORD, make_user

NEW_PASSWORD = "quiet-Harbour-lantern-19"
TOO_MANY = "Too many failed login attempts. Try again later."


def test_login_with_the_right_password_signs_in(owner, org):
    client, response = password_login("owner@acme.test")

    assert response.status_code == 302
    assert response["Location"] == "/console/"
    assert signed_in_user_id(client) == str(owner.pk)


def test_login_address_is_case_insensitive(owner, org):
    client, response = password_login("OWNER@Acme.TEST")

    assert signed_in_user_id(client) == str(owner.pk)


def test_login_with_a_wrong_password_is_a_form_error(owner, org):
    client, response = password_login("owner@acme.test", "not the password at all")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "The email address and/or password you specified are not correct."
    ]
    assert b"are not correct" in response.content
    assert signed_in_user_id(client) is None


def test_login_with_an_unverified_address_waits_for_verification(db, deliver):
    make_user("new@shop.test", verified=False)

    with deliver():
        client, response = password_login("new@shop.test")

    assert response["Location"] == "/accounts/confirm-email/"
    assert signed_in_user_id(client) is None
    assert only_mail_to("new@shop.test").subject == "Confirm your e-mail address for Tinko"


def test_login_is_refused_after_five_failures_for_an_address_even_with_the_right_password(owner, org):
    # ACCOUNT_RATE_LIMITS["login_failed"]: 5 per 5 minutes per address.
    client = Client()
    for attempt in range(5):
        _, response = password_login("owner@acme.test", f"wrong guess {attempt}", client=client)
        assert response.context["form"].non_field_errors() != [TOO_MANY]

    _, response = password_login("owner@acme.test", PASSWORD, client=client)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [TOO_MANY]
    assert signed_in_user_id(client) is None
    # Another address from the same browser is not locked out by these failures.
    make_user("admin@acme.test")
    other, response = password_login("admin@acme.test")
    assert response.status_code == 302


def test_login_view_answers_429_after_thirty_attempts_a_minute_from_one_ip(owner, org):
    # ACCOUNT_RATE_LIMITS["login"]: 30 per minute per IP, whatever the account.
    client = Client()
    for n in range(30):
        _, response = password_login(f"nobody{n}@example.test", "whatever it is", client=client)
        assert response.status_code == 200

    _, response = password_login("owner@acme.test", client=client)

    assert response.status_code == 429
    assert signed_in_user_id(client) is None


def test_password_reset_mail_link_sets_a_new_password_that_signs_in(owner, org, deliver):
    client = Client()
    with deliver():
        response = client.post("/accounts/password/reset/", {"email": "Owner@Acme.test"})
    assert response["Location"] == "/accounts/password/reset/done/"
    message = only_mail_to("owner@acme.test")
    assert message.subject == "Reset your Tinko password"

    response = client.get(link_in(message, r"/accounts/password/reset/key/[^/\s]+/"))
    assert response.status_code == 302  # allauth moves the key out of the URL into the session
    form_url = response["Location"]
    response = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response["Location"] == "/accounts/password/reset/key/done/"

    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    _, response = password_login("owner@acme.test", PASSWORD)
    assert response.status_code == 200
    fresh, response = password_login("owner@acme.test", NEW_PASSWORD)
    assert signed_in_user_id(fresh) == str(owner.pk)


def test_password_reset_rejects_a_weak_new_password(owner, org, deliver):
    client = Client()
    with deliver():
        client.post("/accounts/password/reset/", {"email": "owner@acme.test"})
    key_url = link_in(only_mail_to("owner@acme.test"), r"/accounts/password/reset/key/[^/\s]+/")
    form_url = client.get(key_url)["Location"]

    response = client.post(form_url, {"password1": "1234567890", "password2": "1234567890"})

    assert response.status_code == 200
    assert "This password is entirely numeric." in response.context["form"].errors["password1"]
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_password_reset_does_not_reveal_whether_an_account_exists(owner, org, deliver):
    with deliver():
        known = Client().post("/accounts/password/reset/", {"email": "owner@acme.test"})
        unknown = Client().post("/accounts/password/reset/", {"email": "stranger@acme.test"})

    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/accounts/password/reset/done/"
    # The stranger learns by mail (only they can read) that there is no account.
    assert "/accounts/password/reset/key/" not in only_mail_to("stranger@acme.test").body
    assert len(mail.outbox) == 2
