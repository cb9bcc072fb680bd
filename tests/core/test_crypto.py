import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.core.management import CommandError, call_command

from tinko import crypto


def test_encrypt_round_trips_and_hides_the_text():
    token = crypto.encrypt("JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in token
    assert crypto.decrypt(token) == "JBSWY3DPEHPK3PXP"


def test_a_value_under_an_old_key_still_decrypts_after_rotation(settings):
    old, new = crypto.generate_key(), crypto.generate_key()
    settings.TINKO_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt("secret")
    settings.TINKO_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token) == "secret"
    rotated = crypto.reencrypt(token)
    settings.TINKO_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(rotated) == "secret"
    with pytest.raises(crypto.InvalidToken):
        crypto.decrypt(token)


def test_totp_seed_is_stored_encrypted(owner):
    totp = TOTP.activate(owner, "JBSWY3DPEHPK3PXP")
    stored = Authenticator.objects.get(pk=totp.instance.pk).data["secret"]
    assert stored != "JBSWY3DPEHPK3PXP"
    assert crypto.decrypt(stored) == "JBSWY3DPEHPK3PXP"


def test_reencrypt_secrets_moves_seeds_to_the_newest_key(owner, settings):
    old, new = crypto.generate_key(), crypto.generate_key()
    settings.TINKO_ENCRYPTION_KEYS = [old]
    totp = TOTP.activate(owner, "JBSWY3DPEHPK3PXP")
    settings.TINKO_ENCRYPTION_KEYS = [new, old]
    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))
    settings.TINKO_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(Authenticator.objects.get(pk=totp.instance.pk).data["secret"]) == "JBSWY3DPEHPK3PXP"


def test_reencrypt_secrets_refuses_when_a_needed_key_is_gone(owner, settings):
    settings.TINKO_ENCRYPTION_KEYS = [crypto.generate_key()]
    totp = TOTP.activate(owner, "JBSWY3DPEHPK3PXP")
    before = Authenticator.objects.get(pk=totp.instance.pk).data
    settings.TINKO_ENCRYPTION_KEYS = [crypto.generate_key()]
    with pytest.raises(CommandError, match="opens with none"):
        call_command("reencrypt_secrets")
    assert Authenticator.objects.get(pk=totp.instance.pk).data == before


def test_reencrypt_secrets_moves_encrypted_text_fields_to_the_newest_key(org, settings):
    from notifications.models import WebhookEndpoint
    from tinko.models import OutboundEmail

    old, new = crypto.generate_key(), crypto.generate_key()
    settings.TINKO_ENCRYPTION_KEYS = [old]
    endpoint = WebhookEndpoint.objects.create(
        organization=org, url="https://hooks.example.com/tinko", secret_encrypted=crypto.encrypt("whsec_abc")
    )
    email = OutboundEmail.objects.create(
        to=["someone@example.com"], subject="Hello", body_encrypted=crypto.encrypt("body"), html_encrypted=""
    )
    settings.TINKO_ENCRYPTION_KEYS = [new, old]
    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))
    settings.TINKO_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted) == "whsec_abc"
    email.refresh_from_db()
    assert crypto.decrypt(email.body_encrypted) == "body" and email.html_encrypted == ""
