"""Console → Payment providers: roles, tenancy, secrets never shown again, test connection, re-encryption."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from payments.models import ProviderAccount
from tinko import crypto
from tinko.models import AuditEvent
from tests.conftest import login

pytestmark = pytest.mark.django_db
URL = "/console/providers/"
STRIPE = {"provider": "stripe", "stripe-name": "EU store", "stripe-secret_key": "sk_live_51SuperSecretKey9876",
          "stripe-webhook_secret": "whsec_SuperSecretWebhook"}


def test_url_name_is_the_contracted_one():
    assert reverse("console:providers") == URL


def test_admin_connects_stripe_and_secrets_are_encrypted_and_never_shown(org, admin):
    client = login(admin)
    response = client.post(URL, STRIPE, follow=True)
    assert response.status_code == 200
    account = ProviderAccount.objects.get(organization=org)
    assert (account.provider, account.mode, account.key_hint) == ("stripe", "live", "sk_live_…9876")
    assert account.secret("secret_key") == "sk_live_51SuperSecretKey9876"
    stored = str(account.credentials)
    assert "SuperSecret" not in stored
    page = response.content.decode()
    assert "SuperSecret" not in page and account.webhook_path in page
    audit = AuditEvent.objects.get(action="provider_account.connected")
    assert "SuperSecret" not in str(audit.data)


def test_bad_keys_are_refused_with_a_clear_error_and_nothing_stored(org, admin):
    client = login(admin)
    response = client.post(URL, {**STRIPE, "stripe-secret_key": "pk_live_publishable"})
    assert response.status_code == 400 and "sk_test_" in response.content.decode()
    response = client.post(URL, {"provider": "razorpay", "razorpay-name": "IN", "razorpay-key_id": "nope",
                                 "razorpay-key_secret": "s", "razorpay-webhook_secret": "w"})
    assert response.status_code == 400 and "rzp_test_" in response.content.decode()
    assert not ProviderAccount.objects.exists()


def test_viewer_sees_no_edit_controls_and_is_refused(org, viewer, stripe_account):
    client = login(viewer)
    page = client.get(URL).content.decode()
    assert stripe_account.name in page and "Connect Stripe" not in page and "Test connection" not in page
    assert client.post(URL, STRIPE).status_code == 403
    assert client.post(reverse("console:provider_toggle", args=[stripe_account.pk])).status_code == 403
    assert ProviderAccount.objects.count() == 1


def test_member_cannot_configure(org, member):
    assert login(member).post(URL, STRIPE).status_code == 403


def test_other_organization_cannot_see_or_touch_the_account(outsider_client, stripe_account):
    assert stripe_account.name not in outsider_client.get(URL).content.decode()
    assert outsider_client.post(reverse("console:provider_test", args=[stripe_account.pk])).status_code == 404
    assert outsider_client.post(reverse("console:provider_toggle", args=[stripe_account.pk])).status_code == 404
    stripe_account.refresh_from_db()
    assert stripe_account.is_active


def test_test_connection_calls_stripe_and_reports(owner_client, fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/balance", {"object": "balance", "livemode": False, "available": []})
    response = owner_client.post(reverse("console:provider_test", args=[stripe_account.pk]), follow=True)
    assert "Connected to Stripe (test mode)" in response.content.decode()
    stripe_account.refresh_from_db()
    assert stripe_account.last_check_ok is True
    fake_psp.add("GET", "/v1/balance", {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}, status=401)
    owner_client.post(reverse("console:provider_test", args=[stripe_account.pk]))
    stripe_account.refresh_from_db()
    assert stripe_account.last_check_ok is False and "refused" in stripe_account.last_check_detail


def test_paused_account_refuses_webhooks(owner_client, client, stripe_account):
    owner_client.post(reverse("console:provider_toggle", args=[stripe_account.pk]))
    stripe_account.refresh_from_db()
    assert not stripe_account.is_active
    assert client.post(stripe_account.webhook_path, data=b"{}", content_type="application/json").status_code == 404


def test_reencrypt_command_rotates_provider_credentials(settings, stripe_account):
    old = stripe_account.credentials["secret_key"]
    settings.TINKO_ENCRYPTION_KEYS = [crypto.generate_key(), *settings.TINKO_ENCRYPTION_KEYS]
    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))
    stripe_account.refresh_from_db()
    assert stripe_account.credentials["secret_key"] != old
    settings.TINKO_ENCRYPTION_KEYS = settings.TINKO_ENCRYPTION_KEYS[:1]
    assert stripe_account.secret("secret_key") == "sk_test_51AcmeSecretKey0000004242"


def test_admin_replaces_a_key_and_the_webhook_url_stays(owner_client, stripe_account):
    path = stripe_account.webhook_path
    url = reverse("console:provider_keys", args=[stripe_account.pk])
    response = owner_client.post(url, {f"keys-{stripe_account.pk}-webhook_secret": "whsec_RotatedSecret", f"keys-{stripe_account.pk}-secret_key": ""}, follow=True)
    assert "New keys" in response.content.decode() and "RotatedSecret" not in response.content.decode()
    stripe_account.refresh_from_db()
    assert stripe_account.secret("webhook_secret") == "whsec_RotatedSecret"
    assert stripe_account.secret("secret_key") == "sk_test_51AcmeSecretKey0000004242"
    assert stripe_account.webhook_path == path
    audit = AuditEvent.objects.get(action="provider_account.keys_replaced")
    assert audit.data["replaced"] == ["webhook_secret"] and "Rotated" not in str(audit.data)


def test_replacing_with_a_key_of_the_other_mode_is_refused(owner_client, stripe_account):
    url = reverse("console:provider_keys", args=[stripe_account.pk])
    response = owner_client.post(url, {f"keys-{stripe_account.pk}-secret_key": "sk_live_51OtherMode0000"}, follow=True)
    assert "other mode" in response.content.decode()
    stripe_account.refresh_from_db()
    assert stripe_account.secret("secret_key") == "sk_test_51AcmeSecretKey0000004242"


def test_viewer_and_outsider_cannot_replace_keys(viewer_client, outsider_client, stripe_account):
    url = reverse("console:provider_keys", args=[stripe_account.pk])
    data = {f"keys-{stripe_account.pk}-webhook_secret": "whsec_Evil"}
    assert viewer_client.post(url, data).status_code == 403
    assert outsider_client.post(url, data).status_code == 404
    stripe_account.refresh_from_db()
    assert stripe_account.secret("webhook_secret") != "whsec_Evil"


def test_providers_page_shows_paused_recharges_and_why(owner_client, razorpay_account):
    from payments.accounts import pause_recharges

    pause_recharges(account=razorpay_account, reason="provider rejected the request: Razorpay refused the key id and secret")
    page = owner_client.get("/console/providers/").content.decode()
    assert "Re-charges paused" in page
    assert "Razorpay refused the key id and secret" in page
    assert "Test the connection or replace the keys to resume." in page


def test_new_keys_resume_paused_recharges(razorpay_account):
    from payments import accounts

    accounts.pause_recharges(account=razorpay_account, reason="Razorpay refused the key id and secret")
    # Told once, however many re-charges are refused meanwhile.
    assert accounts.pause_recharges(account=razorpay_account, reason="again") is False
    accounts.replace_secrets(account=razorpay_account, secrets={"key_secret": "rzpNewKeySecret0123456789"})
    razorpay_account.refresh_from_db()
    assert razorpay_account.recharges_paused_at is None and razorpay_account.recharges_paused_reason == ""
