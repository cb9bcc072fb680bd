"""PSP webhooks go from SecurityMiddleware straight to their view: the console's middleware is not run for them."""

from __future__ import annotations

import pytest

from payments.models import WebhookMessage, WebhookStatus
from tests.payments.conftest import post_stripe
from tests.payments.psp import load

pytestmark = pytest.mark.django_db


def test_a_psp_webhook_is_stored_and_answered_without_the_console_middleware(client, stripe_account):
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), process=False)
    assert response.status_code == 200
    assert WebhookMessage.objects.get().status == WebhookStatus.RECEIVED
    # Still through the request id and SecurityMiddleware; not through CSP, sessions or the language middleware.
    assert response["X-Request-ID"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response and "Vary" not in response
    page = client.get("/accounts/login/")
    assert "Content-Security-Policy" in page


def test_a_psp_webhook_with_a_host_not_allowed_is_refused(client, stripe_account, settings):
    settings.ALLOWED_HOSTS = ["tinko.example"]
    response = client.post(stripe_account.webhook_path, data=b"{}", content_type="application/json",
                           HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert not WebhookMessage.objects.exists()


def test_a_webhook_url_without_its_trailing_slash_is_answered_by_the_whole_stack_as_before(client, stripe_account):
    response = client.post(stripe_account.webhook_path.rstrip("/"), data=b"{}", content_type="application/json")
    # CommonMiddleware's APPEND_SLASH redirect, as before the short path existed; the view never ran.
    assert (response.status_code, response["Location"]) == (301, stripe_account.webhook_path)
    assert "Content-Security-Policy" in response
    assert not WebhookMessage.objects.exists()
