"""The inbox acknowledges what it stored and a worker processes it: retries, leases, order, the messages that ask for it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from payments import inbox
from payments.models import WebhookMessage, WebhookStatus
from recovery.models import FailureEvent, Payment, PaymentStatus
from tests.payments.conftest import post_stripe, process_inbox
from tests.payments.psp import load

pytestmark = pytest.mark.django_db


def _failure(n: int, *, customer: str = "cus_RenewAlice01") -> dict:
    event = load("stripe", "payment_intent.payment_failed")
    event["id"] = f"evt_order{n}"
    intent = event["data"]["object"]
    intent.update(id=f"pi_order{n}", customer=customer)
    intent["latest_charge"] = intent["last_payment_error"]["charge"] = f"ch_order{n}"
    return event


def _due_now(message: WebhookMessage) -> None:
    WebhookMessage.objects.filter(pk=message.pk).update(next_try_at=timezone.now())


def test_a_webhook_is_acknowledged_when_stored_and_applied_by_the_processing_step(client, stripe_account):
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), process=False)
    assert response.status_code == 200 and response.json() == {"detail": "Received."}
    message = WebhookMessage.objects.get()
    assert (message.status, message.tries, message.ordering_key) == (WebhookStatus.RECEIVED, 0, "cus_RenewAlice01")
    assert not Payment.objects.exists()
    assert process_inbox() == 1
    message.refresh_from_db()
    assert (message.status, message.tries) == (WebhookStatus.PROCESSED, 1)
    assert message.payment == Payment.objects.get(reference="pi_3QfailPI0001")
    assert "recorded" in message.result


def test_a_badly_signed_webhook_is_refused_and_never_processed(client, stripe_account):
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), secret="whsec_wrong",
                           process=False)
    assert response.status_code == 400 and "signature" in response.json()["error"]
    message = WebhookMessage.objects.get()
    # Kept for the merchant's logs (a wrong secret shows there), but nothing is left to process.
    assert (message.status, message.event_id, message.signature_valid) == (WebhookStatus.REJECTED, "", False)
    assert process_inbox() == 0
    assert not Payment.objects.exists() and not FailureEvent.objects.exists()


def test_a_processing_failure_is_retried_with_backoff_and_shown_until_it_succeeds(client, fake_psp, stripe_account,
                                                                                  owner_client):
    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    payment = Payment.objects.get(reference="pi_3QfailPI0001")
    # Stripe cannot be asked (no route): the success cannot be confirmed yet.
    post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded"))
    message = WebhookMessage.objects.get(event_type="payment_intent.succeeded")
    assert (message.status, message.tries) == (WebhookStatus.RETRYING, 1)
    first_wait = message.next_try_at - timezone.now()
    assert timedelta(seconds=3) < first_wait <= timedelta(seconds=5)
    # Not due yet: a worker leaves it alone.
    assert process_inbox() == 0
    _due_now(message)
    process_inbox()
    message.refresh_from_db()
    assert (message.status, message.tries) == (WebhookStatus.RETRYING, 2)
    assert message.next_try_at - timezone.now() > timedelta(seconds=8)
    page = owner_client.get(f"/console/developers/logs/provider-webhooks/{message.pk}/").content.decode()
    assert "Retrying" in page and "Processing tries" in page and message.error.split(":")[0] in page
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    _due_now(message)
    assert process_inbox() == 1
    message.refresh_from_db()
    payment.refresh_from_db()
    assert (message.status, message.tries) == (WebhookStatus.PROCESSED, 3)
    assert payment.status == PaymentStatus.RECOVERED


def test_a_message_is_given_up_after_the_last_try_and_a_redelivery_tries_again(client, fake_psp, stripe_account, settings):
    settings.TINKO_INBOX_MAX_TRIES = 2
    event = load("stripe", "payment_intent.succeeded")
    post_stripe(client, stripe_account, event)
    message = WebhookMessage.objects.get()
    _due_now(message)
    process_inbox()
    message.refresh_from_db()
    assert (message.status, message.tries, message.next_try_at) == (WebhookStatus.FAILED, 2, None)
    assert message.error
    _due_now(message)
    assert process_inbox() == 0
    # The merchant resends the event from Stripe's dashboard: the stored message is due again.
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    assert post_stripe(client, stripe_account, event).status_code == 200
    message.refresh_from_db()
    assert (message.status, message.deliveries, message.tries) == (WebhookStatus.PROCESSED, 2, 1)


def test_a_worker_that_died_mid_batch_leaves_its_messages_to_the_next_and_they_are_applied_once(client, stripe_account):
    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), process=False)
    # A worker claims the message and dies (kill -9) before it commits anything.
    (dead_claim,) = inbox._claim(10)
    assert dead_claim.status == WebhookStatus.PROCESSING
    # Its lease still runs: nobody else takes the message.
    assert process_inbox() == 0
    # The lease ran out: the next worker takes it and applies it.
    WebhookMessage.objects.filter(pk=dead_claim.pk).update(next_try_at=timezone.now() - timedelta(seconds=1))
    assert process_inbox() == 1
    message = WebhookMessage.objects.get()
    assert (message.status, message.tries) == (WebhookStatus.PROCESSED, 2)
    # Had the first worker only been slow, its late result is thrown away: the claim is no longer its.
    inbox._process_claimed(dead_claim, stripe_account)
    assert FailureEvent.objects.count() == 1 and Payment.objects.get().failure_count == 1
    message.refresh_from_db()
    assert (message.status, message.tries) == (WebhookStatus.PROCESSED, 2)


def test_events_of_one_customer_are_applied_in_arrival_order_and_others_are_not_held(client, fake_psp, stripe_account):
    success = load("stripe", "payment_intent.succeeded")
    success["data"]["object"]["customer"] = "cus_A"
    # cus_A: a success Stripe cannot confirm yet, then a failure; cus_B: a failure.
    post_stripe(client, stripe_account, success, process=False)
    post_stripe(client, stripe_account, _failure(1, customer="cus_A"), process=False)
    post_stripe(client, stripe_account, _failure(2, customer="cus_B"), process=False)
    process_inbox()
    statuses = dict(WebhookMessage.objects.values_list("event_id", "status"))
    assert statuses == {success["id"]: WebhookStatus.RETRYING, "evt_order1": WebhookStatus.RECEIVED,
                        "evt_order2": WebhookStatus.PROCESSED}
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    _due_now(WebhookMessage.objects.get(event_id=success["id"]))
    process_inbox()
    assert set(WebhookMessage.objects.values_list("status", flat=True)) == {WebhookStatus.PROCESSED}
    first, second = WebhookMessage.objects.filter(ordering_key="cus_A").order_by("processed_at")
    assert (first.event_id, second.event_id) == (success["id"], "evt_order1")


def test_two_batches_never_hold_two_events_of_one_customer(client, stripe_account):
    for n in range(3):
        post_stripe(client, stripe_account, _failure(n), process=False)
    post_stripe(client, stripe_account, _failure(9, customer="cus_other"), process=False)
    first = inbox._claim(10)
    second = inbox._claim(10)
    assert [m.event_id for m in first] == ["evt_order0", "evt_order9"]
    assert second == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_stored_webhooks_ask_a_worker_once_and_the_worker_applies_them(stripe_account, run_jobs):
    import dramatiq

    from django.test import Client

    broker = dramatiq.get_broker()
    client = Client()
    for n in range(3):
        assert post_stripe(client, stripe_account, _failure(n, customer=f"cus_{n}"), process=False).status_code == 200
    # One message waits for all three (the others found it waiting).
    assert broker.client.llen(f"{broker.namespace}:inbox") == 1
    run_jobs()
    assert set(WebhookMessage.objects.values_list("status", flat=True)) == {WebhookStatus.PROCESSED}
    assert Payment.objects.count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_the_scheduler_tick_asks_again_for_webhooks_whose_message_was_lost(stripe_account, run_jobs):
    from django.test import Client

    post_stripe(Client(), stripe_account, load("stripe", "payment_intent.payment_failed"), process=False)
    import dramatiq

    dramatiq.get_broker().flush_all()  # Redis lost the message
    run_jobs()
    assert WebhookMessage.objects.get().status == WebhookStatus.RECEIVED
    inbox.sweep()
    run_jobs()
    assert WebhookMessage.objects.get().status == WebhookStatus.PROCESSED


def test_a_new_webhook_secret_counts_from_the_next_request(client, stripe_account):
    from payments import accounts

    assert post_stripe(client, stripe_account, _failure(1)).status_code == 200  # the account is cached now
    accounts.replace_secrets(account=stripe_account, secrets={"webhook_secret": "whsec_rotated"})
    assert post_stripe(client, stripe_account, _failure(2)).status_code == 400
    assert post_stripe(client, stripe_account, _failure(3), secret="whsec_rotated").status_code == 200


def test_a_paused_account_is_refused_from_the_next_request(client, stripe_account, owner):
    from payments import accounts

    assert post_stripe(client, stripe_account, _failure(1)).status_code == 200  # the account is cached now
    accounts.set_active(account=stripe_account, active=False, actor=owner)
    assert post_stripe(client, stripe_account, _failure(2)).status_code == 404


def test_failures_of_several_customers_are_recorded_together(client, stripe_account):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    post_stripe(client, stripe_account, _failure(0, customer="cus_warm"))  # the classifier's rules are read
    for n in range(1, 6):
        post_stripe(client, stripe_account, _failure(n, customer=f"cus_{n}"), process=False)
    with CaptureQueriesContext(connection) as ctx:
        assert process_inbox() == 5
    # One record_failures and one UPDATE for the five, not five transactions of ~14 statements.
    assert len(ctx.captured_queries) <= 25, len(ctx.captured_queries)
    for n in range(1, 6):
        message = WebhookMessage.objects.get(event_id=f"evt_order{n}")
        payment = Payment.objects.get(reference=f"pi_order{n}")
        assert (message.status, message.payment_id) == (WebhookStatus.PROCESSED, payment.pk)
        assert message.result == f"Failure of payment pi_order{n} recorded (insufficient_funds)."
        assert FailureEvent.objects.filter(payment=payment).count() == 1


def test_a_batch_holding_a_late_failure_of_a_recovered_payment_is_applied_one_by_one(client, fake_psp, stripe_account):
    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded"))
    late = load("stripe", "charge.failed")
    late["id"] = "evt_late"
    late["data"]["object"].update(id="ch_late", payment_intent="pi_3QfailPI0001", metadata={}, customer="cus_late")
    post_stripe(client, stripe_account, late, process=False)
    post_stripe(client, stripe_account, _failure(1, customer="cus_other"), process=False)
    assert process_inbox() == 2
    late_message = WebhookMessage.objects.get(event_id="evt_late")
    assert late_message.status == WebhookStatus.PROCESSED and "already recovered" in late_message.result
    assert Payment.objects.get(reference="pi_3QfailPI0001").status == PaymentStatus.RECOVERED
    assert WebhookMessage.objects.get(event_id="evt_order1").status == WebhookStatus.PROCESSED
    assert Payment.objects.get(reference="pi_order1").failure_count == 1


def _spy_claims(monkeypatch) -> list[int]:
    sizes: list[int] = []
    claim = inbox._claim

    def spy(limit):
        claimed = claim(limit)
        sizes.append(len(claimed))
        return claimed

    monkeypatch.setattr(inbox, "_claim", spy)
    return sizes


def test_between_batches_that_were_not_full_a_run_waits_and_claims_what_arrived_meanwhile_at_once(
        client, stripe_account, monkeypatch):
    from django.core.cache import cache

    cache.delete(inbox.KICK_KEY)
    post_stripe(client, stripe_account, _failure(0, customer="cus_0"), process=False)
    sizes = _spy_claims(monkeypatch)
    waits = []

    def wait(seconds):
        # While the run waits it holds the "asked" key: webhooks stored now send no job (kick finds the key).
        assert cache.get(inbox.KICK_KEY) is not None
        if not waits:
            for n in range(1, 4):
                post_stripe(client, stripe_account, _failure(n, customer=f"cus_{n}"), process=False)
        waits.append(seconds)

    monkeypatch.setattr(inbox.time, "sleep", wait)
    assert inbox.process_due(batch=10, gather=0.1) == 4
    # One claim for the first, one for the three that arrived during the wait, an empty one after the next wait.
    assert sizes == [1, 3, 0]
    assert waits == [0.1, 0.1]
    assert cache.get(inbox.KICK_KEY) is None  # deleted before the last claim
    assert set(WebhookMessage.objects.values_list("status", flat=True)) == {WebhookStatus.PROCESSED}


def test_a_run_stops_after_a_batch_when_a_webhook_stored_meanwhile_has_asked_for_another(
        client, stripe_account, monkeypatch):
    from django.core.cache import cache

    cache.delete(inbox.KICK_KEY)
    post_stripe(client, stripe_account, _failure(0, customer="cus_0"), process=False)
    process_batch = inbox.process_batch

    def batch_then_a_webhook_arrives(*, limit):
        done = process_batch(limit=limit)
        # Stored after this run's claim: it finds no key, so it asks for a run of its own.
        post_stripe(client, stripe_account, _failure(1, customer="cus_1"), process=False)
        inbox.kick()
        return done

    monkeypatch.setattr(inbox, "process_batch", batch_then_a_webhook_arrives)
    monkeypatch.setattr(inbox.time, "sleep", lambda seconds: pytest.fail("the run waited instead of leaving it"))
    assert inbox.process_due(batch=10, gather=0.1) == 1
    # The later webhook is left to the run it asked for, whose key is still there.
    assert cache.get(inbox.KICK_KEY) is not None
    statuses = dict(WebhookMessage.objects.values_list("event_id", "status"))
    assert statuses == {"evt_order0": WebhookStatus.PROCESSED, "evt_order1": WebhookStatus.RECEIVED}
    cache.delete(inbox.KICK_KEY)


def test_without_a_gather_time_a_run_claims_again_at_once(client, stripe_account, monkeypatch):
    post_stripe(client, stripe_account, _failure(0, customer="cus_0"), process=False)
    sizes = _spy_claims(monkeypatch)
    monkeypatch.setattr(inbox.time, "sleep", lambda seconds: pytest.fail("no wait without a gather time"))
    assert inbox.process_due(batch=10) == 1
    assert sizes == [1, 0]
