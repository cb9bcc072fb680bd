"""Connected accounts, a fake PSP over HTTP, and webhook senders for the payments tests."""

from __future__ import annotations

import json

import pytest

from payments import accounts
from tests.payments.psp import FakePSP, razorpay_signature, stripe_signature

STRIPE_WEBHOOK_SECRET = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"
RAZORPAY_WEBHOOK_SECRET = "rzp-webhook-secret-81f3"
RAZORPAY_KEY_SECRET = "rzpKeySecret0123456789ab"


@pytest.fixture
def fake_psp(settings):
    psp = FakePSP().start()
    settings.TINKO_STRIPE_API_BASE = psp.url
    settings.TINKO_RAZORPAY_API_BASE = psp.url
    yield psp
    psp.stop()


@pytest.fixture
def stripe_account(org, owner):
    return accounts.connect_account(
        organization=org, provider="stripe", name="Acme Stripe", actor=owner,
        secrets={"secret_key": "sk_test_51AcmeSecretKey0000004242", "webhook_secret": STRIPE_WEBHOOK_SECRET},
    )


@pytest.fixture
def razorpay_account(org, owner):
    return accounts.connect_account(
        organization=org, provider="razorpay", name="Acme Razorpay", key_id="rzp_test_AcmeKeyId01", actor=owner,
        secrets={"key_secret": RAZORPAY_KEY_SECRET, "webhook_secret": RAZORPAY_WEBHOOK_SECRET},
    )


def process_inbox() -> int:
    """Run the inbox's processing step here, as a worker would: every due message, in this thread."""
    from payments import inbox

    return inbox.process_due()


def post_stripe(client, account, event, *, secret=STRIPE_WEBHOOK_SECRET, timestamp=None, signature=None, body=None,
                process=True):
    """POST a signed Stripe event; then (``process``) run the inbox's processing step, as a worker would."""
    body = body if body is not None else json.dumps(event).encode()
    headers = {}
    if signature is not False:
        headers["HTTP_STRIPE_SIGNATURE"] = signature or stripe_signature(body, secret, timestamp=timestamp)
    response = client.post(account.webhook_path, data=body, content_type="application/json", **headers)
    if process:
        process_inbox()
    return response


def post_razorpay(client, account, event, *, event_id="evt_rzp_1", secret=RAZORPAY_WEBHOOK_SECRET, body=None, signature=None,
                  process=True):
    """POST a signed Razorpay event; then (``process``) run the inbox's processing step, as a worker would."""
    body = body if body is not None else json.dumps(event).encode()
    headers = {"HTTP_X_RAZORPAY_EVENT_ID": event_id} if event_id else {}
    if signature is not False:
        headers["HTTP_X_RAZORPAY_SIGNATURE"] = signature or razorpay_signature(body, secret)
    response = client.post(account.webhook_path, data=body, content_type="application/json", **headers)
    if process:
        process_inbox()
    return response
