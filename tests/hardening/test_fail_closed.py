"""Every inbound webhook refuses what it cannot authenticate; a deploy that could not authenticate fails its check."""

from __future__ import annotations

import base64
import json

import pytest

from notifications.models import Notification, Suppression
from recovery import runner
from tests.notifications.conftest import due_message, ingest, postmark_payload
from tests.ops.procs import production_env, run_manage
from tests.recovery.conftest import api  # noqa: F401  (fixture)

TRACKING = "/webhooks/messages/anymail/postmark/tracking/"


def _message(api) -> Notification:
    payment = ingest(api)
    runner.run_attempt(due_message(payment).pk)
    return Notification.objects.get(payment=payment)


@pytest.mark.django_db
def test_a_forged_bounce_is_refused_when_no_tracking_secret_is_set(api, client, settings):
    notification = _message(api)
    settings.ANYMAIL = {}

    response = client.post(TRACKING, json.dumps(postmark_payload("postmark_bounce.json", notification.public_id)),
                           content_type="application/json")

    assert response.status_code == 403
    assert "authenticate" in response.json()["error"]
    notification.refresh_from_db()
    assert notification.status != "bounced"
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_tracking_event_without_the_secret_is_refused_with_a_json_reason(api, client, settings):
    notification = _message(api)
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret-value"}
    wrong = base64.b64encode(b"hooks:guess").decode()

    response = client.post(TRACKING, json.dumps(postmark_payload("postmark_bounce.json", notification.public_id)),
                           content_type="application/json", headers={"Authorization": f"Basic {wrong}"})

    assert response.status_code == 400
    assert response.json() == {"error": "The request could not be authenticated."}
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_every_anymail_endpoint_is_closed_without_a_secret(client, settings):
    from anymail import urls as anymail_urls

    settings.ANYMAIL = {}
    for pattern in anymail_urls.urlpatterns:
        route = str(pattern.pattern).lstrip("^").rstrip("$").replace("(_mime)?", "")
        response = client.post(f"/webhooks/messages/anymail/{route}", "{}", content_type="application/json")
        assert response.status_code in (400, 403), (route, response.status_code)
        assert response.status_code != 200


@pytest.mark.django_db
def test_twilio_callbacks_are_refused_without_an_auth_token(client, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    response = client.post("/webhooks/messages/twilio/inbound/", {"From": "+14155550100", "Body": "STOP"},
                           headers={"X-Twilio-Signature": "anything"})
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid Twilio signature."}


ESP = {"EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", "SITE_URL": "https://tinko.example.com",
       "REDIS_URL": "redis://127.0.0.1:1/0"}


def test_check_deploy_fails_naming_the_setting_when_an_esp_has_no_tracking_secret(tmp_path):
    result = run_manage("check", "--deploy", env=production_env(tmp_path, **ESP, ANYMAIL='{"POSTMARK_SERVER_TOKEN": "x"}'))

    assert result.returncode != 0
    assert "tinko.E001" in result.stderr
    assert 'ANYMAIL["WEBHOOK_SECRET"] is not set' in result.stderr


def test_check_deploy_passes_the_esp_check_with_a_tracking_secret(tmp_path):
    anymail = json.dumps({"POSTMARK_SERVER_TOKEN": "x", "WEBHOOK_SECRET": "hooks:" + "s" * 24})
    result = run_manage("check", "--deploy", env=production_env(tmp_path, **ESP, ANYMAIL=anymail))

    assert "tinko.E001" not in result.stderr + result.stdout


@pytest.mark.django_db
def test_a_webhook_whose_processing_fails_is_acknowledged_and_the_error_kept_for_staff(client, settings):
    from django.test import Client

    from payments import accounts
    from payments.models import WebhookMessage
    from tests.conftest import make_user
    from tests.payments.conftest import STRIPE_WEBHOOK_SECRET, post_stripe
    from tests.payments.psp import load
    from tinko import services

    owner = make_user("boss@shop.test")
    org = services.create_organization(name="Shop", owner=owner)
    account = accounts.connect_account(organization=org, provider="stripe", name="S", actor=owner, secrets={
        "secret_key": "sk_test_51AcmeSecretKey0000004242", "webhook_secret": STRIPE_WEBHOOK_SECRET})
    settings.TINKO_STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: the re-fetch fails
    settings.TINKO_PSP_TIMEOUT = 2

    response = post_stripe(Client(raise_request_exception=False), account, load("stripe", "payment_intent.succeeded"))

    # Stored before the answer, processed after it: the PSP hears 200 and nothing of the error.
    assert response.status_code == 200
    assert response.json() == {"detail": "Received."}
    message = WebhookMessage.objects.get()
    assert message.status == "retrying" and "APIConnectionError" in message.error
