"""recovery.transitions: each status change of a payment, an attempt and a link, allowed or refused, and races."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from notifications.models import WebhookEndpoint, WebhookMessage
from recovery import services, signals, transitions
from recovery.models import AttemptKind, AttemptStatus, LinkStatus, Payment, PaymentStatus, RecoveryAttempt
from tests.recovery.conftest import Api, concurrently, report
from tinko import crypto
from tinko.models import AuditEvent


@pytest.fixture
def payment(api):
    api.post("events/payment_failed", report(reference="order-1"))
    return Payment.objects.select_related("organization").get(reference="order-1")


def _locked(payment):
    return Payment.objects.select_for_update(of=("self",)).select_related("organization").get(pk=payment.pk)


def _subscribe(organization):
    WebhookEndpoint.objects.create(organization=organization, url="https://hooks.example.com/tinko",
                                   secret_encrypted=crypto.encrypt("whsec_abc"))


@pytest.mark.parametrize("current, new, allowed", [
    ("failed", "recovering", True), ("recovering", "exhausted", True), ("exhausted", "recovering", True),
    ("recovering", "recovered", True), ("exhausted", "recovered", True), ("cancelled", "recovered", True),
    ("recovering", "cancelled", True), ("exhausted", "cancelled", True),
    ("recovered", "cancelled", False), ("recovered", "recovering", False), ("recovered", "failed", False),
    ("cancelled", "recovering", False), ("cancelled", "exhausted", False), ("recovered", "recovered", False),
    ("cancelled", "cancelled", False),
])
def test_which_payment_moves_are_allowed(current, new, allowed):
    assert transitions.can_move(current, new) is allowed


@pytest.mark.django_db
@pytest.mark.parametrize("status", [PaymentStatus.RECOVERED, PaymentStatus.CANCELLED])
def test_a_plan_never_reopens_a_recovered_or_cancelled_payment(payment, status):
    payment.status = status

    with pytest.raises(ValueError):
        transitions.plan(payment, PaymentStatus.RECOVERING, "Next re-charge.")
    assert payment.status == status


@pytest.mark.django_db
def test_cancelling_a_recovered_payment_changes_nothing(payment):
    with transaction.atomic():
        assert transitions.recover(payment=_locked(payment), amount=4999, now=timezone.now(), channel="email")

    with transaction.atomic():
        assert not transitions.cancel(payment=_locked(payment), now=timezone.now())

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED
    assert not AuditEvent.objects.filter(action="payment.cancelled").exists()


@pytest.mark.django_db
def test_money_for_a_cancelled_payment_still_recovers_it(payment):
    services.cancel_recovery(payment=payment)

    with transaction.atomic():
        assert transitions.recover(payment=_locked(payment), amount=4999, now=timezone.now(), channel="psp")

    payment.refresh_from_db()
    assert (payment.status, payment.recovered_amount) == (PaymentStatus.RECOVERED, 4999)


@pytest.mark.django_db
def test_a_stale_copy_cannot_cancel_twice(payment):
    """The change is a conditional UPDATE: a caller holding an old copy of the row loses, even without a lock."""
    first, second = Payment.objects.get(pk=payment.pk), Payment.objects.get(pk=payment.pk)

    assert transitions.cancel(payment=first, now=timezone.now())
    assert not transitions.cancel(payment=second, now=timezone.now())
    assert AuditEvent.objects.filter(action="payment.cancelled").count() == 1


@pytest.mark.django_db
def test_recovery_is_audited_and_announced_once(payment):
    heard = []

    def listen(sender, **kwargs):
        heard.append(kwargs["payment"].pk)

    signals.payment_recovered.connect(listen)
    try:
        with transaction.atomic():
            locked = _locked(payment)
            assert transitions.recover(payment=locked, amount=4999, now=timezone.now(), channel="email")
            assert not transitions.recover(payment=locked, amount=4999, now=timezone.now(), channel="email")
    finally:
        signals.payment_recovered.disconnect(listen)

    assert heard == [payment.pk]
    assert AuditEvent.objects.filter(action="payment.recovered").count() == 1


@pytest.mark.django_db
def test_an_attempt_cancelled_while_queued_cannot_finish(payment):
    attempt = payment.attempts.get()
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.QUEUED)
    services.cancel_recovery(payment=payment)

    assert not transitions.finish(attempt, AttemptStatus.SUCCEEDED, "Sent.", now=timezone.now(), payment=payment)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.CANCELLED


@pytest.mark.django_db
def test_an_answer_from_a_superseded_run_is_not_recorded(payment):
    attempt = payment.attempts.get()
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.RUNNING, claims=2)
    attempt.claims = 1  # the run that lost its lease

    recorded = transitions.record_recharge(attempt, payment=payment, fields={"status": AttemptStatus.FAILED,
                                                                             "outcome": "Declined."})

    assert not recorded
    assert RecoveryAttempt.objects.get(pk=attempt.pk).status == AttemptStatus.RUNNING


@pytest.mark.django_db
def test_a_deferred_message_must_be_queued(payment):
    attempt = payment.attempts.get()  # scheduled, not claimed

    assert not transitions.defer(attempt, scheduled_for=timezone.now(), outcome="Quiet hours.")


@pytest.mark.django_db
def test_links_open_only_while_live_and_unexpired(payment):
    now = timezone.now()
    live, _ = services.create_link(payment=payment, now=now)
    old, _ = services.create_link(payment=payment, now=now - timedelta(hours=49))
    revoked, _ = services.create_link(payment=payment, now=now)
    transitions.revoke_links(payment=payment, now=now, keep=live)
    revoked.refresh_from_db()
    old.status = LinkStatus.ACTIVE  # a copy read before the revocation

    assert transitions.open_link(live, now=now) and live.status == LinkStatus.OPENED
    assert not transitions.open_link(revoked, now=now)
    assert not transitions.open_link(old, now=now)
    old.refresh_from_db()
    assert old.status == LinkStatus.REVOKED  # a stale copy neither opens nor expires a revoked link


@pytest.mark.django_db
def test_an_expired_link_is_marked_expired_on_its_visit(payment):
    link, _ = services.create_link(payment=payment, now=timezone.now() - timedelta(hours=49))

    assert not transitions.open_link(link, now=timezone.now())
    link.refresh_from_db()
    assert (link.status, link.open_count) == (LinkStatus.EXPIRED, 0)


@pytest.mark.django_db
def test_the_window_sweep_exhausts_and_announces_once(payment):
    _subscribe(payment.organization)
    Payment.objects.filter(pk=payment.pk).update(recovery_ends_at=timezone.now() - timedelta(minutes=1))

    assert services.exhaust_ended_recoveries() == 1
    assert services.exhaust_ended_recoveries() == 0
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["payment.exhausted"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_two_workers_starting_one_recharge_one_wins(api_key):
    Api(api_key[1]).post("events/payment_failed", report(reference="order-race"))
    attempt = RecoveryAttempt.objects.get(kind=AttemptKind.AUTO_RETRY)
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.QUEUED)
    now = timezone.now()

    results = concurrently(2, lambda: transitions.start_recharge(attempt.pk, now=now, lease_until=now))

    assert sorted(results) == [False, True]
    attempt.refresh_from_db()
    assert (attempt.status, attempt.psp_calls) == (AttemptStatus.RUNNING, 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_two_confirmations_of_one_payment_record_one_recovery(api_key):
    Api(api_key[1]).post("events/payment_failed", report(reference="order-race"))
    payment = Payment.objects.select_related("organization").get(reference="order-race")
    _subscribe(payment.organization)

    def confirm():
        with transaction.atomic():
            return transitions.recover(payment=_locked(payment), amount=4999, now=timezone.now(), channel="link")

    assert sorted(concurrently(2, confirm)) == [False, True]
    assert AuditEvent.objects.filter(action="payment.recovered").count() == 1
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["payment.recovered"]


@pytest.mark.django_db
def test_a_plan_that_exhausts_the_recovery_is_announced_once(payment, api):
    _subscribe(payment.organization)
    Payment.objects.filter(pk=payment.pk).update(recovery_ends_at=timezone.now() - timedelta(minutes=1))

    api.post("events/payment_failed", report(reference="order-1"))
    api.post("events/payment_failed", report(reference="order-1"))

    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.EXHAUSTED
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["payment.exhausted"]
