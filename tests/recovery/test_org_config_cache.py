"""The configuration ingestion keeps in the process (tinko/orgconfig.py): any change takes effect on the next report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from notifications import webhooks
from notifications.models import WebhookEndpoint, WebhookMessage
from payments import accounts
from payments.models import ProviderAccount
from recovery import ingestion
from recovery.models import FailureEvent, Payment, RetryPolicy
from tests.recovery.conftest import report
from tinko import orgconfig
from tinko.models import IdempotencyRecord, Organization

pytestmark = pytest.mark.django_db

CONFIG_TABLES = ("recovery_retrypolicy", "payments_provideraccount", "notifications_webhookendpoint")


def version(org) -> int:
    return Organization.objects.values_list("config_version", flat=True).get(pk=org.pk)


def connect_stripe(org, owner):
    return accounts.connect_account(
        organization=org, provider="stripe", name="Acme Stripe", actor=owner,
        secrets={"secret_key": "sk_test_51AcmeSecretKey0000004242", "webhook_secret": "whsec_acme"},
    )


def test_every_change_of_a_cached_table_raises_the_organizations_version(org, owner, other_org):
    start = version(org)
    policy = RetryPolicy.objects.create(organization=org, name="Gentle")
    assert version(org) == start + 1
    RetryPolicy.objects.filter(pk=policy.pk).update(recovery_window_days=9)  # no signal: the trigger sees it
    assert version(org) == start + 2
    policy.delete()
    assert version(org) == start + 3
    account = connect_stripe(org, owner)
    assert version(org) > start + 3
    before = version(org)
    ProviderAccount.objects.filter(pk=account.pk).update(is_active=False)
    assert version(org) == before + 1
    endpoint, _ = webhooks.create_endpoint(organization=org, url="https://93.184.215.14/hooks", events=[], user=owner)
    assert version(org) >= before + 2
    before = version(org)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    assert version(org) == before + 1
    # Another organization's configuration is its own.
    other_start = version(other_org)
    RetryPolicy.objects.filter(organization=org).update(holdout_percent=5)
    assert version(other_org) == other_start


def test_outside_a_pinned_request_nothing_is_cached(org):
    loads = []
    for _ in range(2):
        orgconfig.cached(org.pk, "test.value", lambda: loads.append(1) or len(loads))
    assert loads == [1, 1]


def test_a_second_report_reads_no_configuration(api, org, owner):
    connect_stripe(org, owner)
    webhooks.create_endpoint(organization=org, url="https://93.184.215.14/hooks", events=[], user=owner)
    with CaptureQueriesContext(connection) as first:
        assert api.post("events/payment_failed", report(provider="stripe")).status_code == 201
    with CaptureQueriesContext(connection) as second:
        assert api.post("events/payment_failed", report(provider="stripe")).status_code == 201

    def config_reads(captured):
        return [q["sql"] for q in captured if q["sql"].startswith("SELECT") and any(t in q["sql"] for t in CONFIG_TABLES)]

    assert len(config_reads(first)) == 3
    assert config_reads(second) == []
    assert WebhookMessage.objects.filter(event_type="payment.recovery_started").count() == 2


def test_a_changed_default_policy_takes_effect_on_the_next_report(api, org):
    policy = RetryPolicy.objects.get(organization=org, is_default=True)
    first = api.post("events/payment_failed", report()).json()
    # A queryset update sends no signal; the trigger still raises the version.
    RetryPolicy.objects.filter(pk=policy.pk).update(recovery_window_days=7)
    second = api.post("events/payment_failed", report()).json()

    paid_first, paid_second = (Payment.objects.get(reference=r["payment"]["reference"]) for r in (first, second))
    assert paid_first.recovery_ends_at - paid_first.first_failed_at == timedelta(days=policy.recovery_window_days)
    assert paid_second.recovery_ends_at - paid_second.first_failed_at == timedelta(days=7)

    gentle = RetryPolicy.objects.create(organization=org, name="Gentle", recovery_window_days=3)
    RetryPolicy.objects.filter(pk=policy.pk).update(is_default=False)
    RetryPolicy.objects.filter(pk=gentle.pk).update(is_default=True)
    third = api.post("events/payment_failed", report()).json()
    assert Payment.objects.get(reference=third["payment"]["reference"]).policy_id == gentle.pk


def test_a_new_webhook_endpoint_receives_the_next_reports_event(api, org, owner):
    assert api.post("events/payment_failed", report()).status_code == 201
    assert not WebhookMessage.objects.exists()
    webhooks.create_endpoint(organization=org, url="https://93.184.215.14/hooks", events=[], user=owner)
    response = api.post("events/payment_failed", report())

    message = WebhookMessage.objects.get()
    assert message.event_type == "payment.recovery_started"
    assert message.payment.reference == response.json()["payment"]["reference"]


def test_a_deactivated_account_is_not_used_for_the_next_report(api, org, owner):
    account = connect_stripe(org, owner)
    connected = api.post("events/payment_failed", report(provider="stripe")).json()
    ProviderAccount.objects.filter(pk=account.pk).update(is_active=False)
    without = api.post("events/payment_failed", report(provider="stripe")).json()

    # Either way the first step is a message; its reason says why no re-charge goes with it.
    assert "need a connected Stripe account" not in connected["next_attempt"]["reason"]
    assert "need a connected Stripe account" in without["next_attempt"]["reason"]


def test_a_keyed_report_that_loses_a_race_runs_again_whole(api, monkeypatch):
    """With an Idempotency-Key the report has no savepoint of its own: a unique violation (another request
    created the same row first) rolls back the key's claim too, and the request runs again."""
    real = ingestion._record
    calls = []

    def lose_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            real(**kwargs)  # its writes are rolled back with the claim
            raise IntegrityError("duplicate key value violates unique constraint")
        return real(**kwargs)

    monkeypatch.setattr(ingestion, "_record", lose_once)
    body = report(reference="order-race")
    response = api.post("events/payment_failed", body, **{"Idempotency-Key": "race-1"})

    assert response.status_code == 201
    assert len(calls) == 2
    assert Payment.objects.filter(reference="order-race").count() == 1
    assert FailureEvent.objects.count() == 1
    assert IdempotencyRecord.objects.get(key="race-1").status_code == 201
    replay = api.post("events/payment_failed", body, **{"Idempotency-Key": "race-1"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == response.json()
    # The replay's claim is in the report's lookup statement: it stops there, recording nothing.
    assert len(calls) == 3
    assert FailureEvent.objects.count() == 1
