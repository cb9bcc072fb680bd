"""A job's re-charges charged one by one and recorded together (recovery.runner.run_recharges), the batch
transitions they use (recovery.transitions.finish_recharges, recover_many), and the crash story: a worker that
dies after charging some attempts of its job loses no charge and makes none twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import WebhookEndpoint, WebhookMessage
from payments.models import SandboxCharge
from recovery import dispatch, leases, runner, services, signals, transitions
from recovery.models import (
    AttemptKind,
    AttemptStatus,
    Channel,
    FailureEvent,
    LinkStatus,
    Payment,
    PaymentStatus,
    RecoveryAttempt,
)
from tests.conftest import locked_elsewhere
from tests.recovery.conftest import report
from tinko import crypto
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db


class WorkerDied(BaseException):
    """Stands for the worker process dying (kill -9): nothing after it runs, no ``except Exception`` catches it."""


def ingest(api, reference, last4) -> Payment:
    response = api.post("events/payment_failed", report(
        reference=reference, payment_method={"brand": "visa", "last4": last4, "exp_month": 12, "exp_year": 2030}))
    assert response.status_code == 201, response.content
    return Payment.objects.get(reference=reference)


def claim(payments) -> list[int]:
    """Make the payments' planned re-charges due and claim them (a scheduler tick); their ids in job order."""
    RecoveryAttempt.objects.filter(payment__in=payments, status=AttemptStatus.SCHEDULED).update(
        scheduled_for=timezone.now() - timedelta(seconds=1))
    assert dispatch.claim_due_attempts() == len(payments)
    return [RecoveryAttempt.objects.get(payment=p, status=AttemptStatus.QUEUED).pk for p in payments]


def subscribe(organization):
    WebhookEndpoint.objects.create(organization=organization, url="https://hooks.example.com/tinko",
                                   secret_encrypted=crypto.encrypt("whsec_abc"))


def after_every_lease() -> timezone.datetime:
    return timezone.now() + max(dispatch.lease(), leases.run_lease()) + timedelta(seconds=1)


def webhooks(payment) -> list[str]:
    """The merchant webhooks about the payment's re-charges (not the one about its recovery's start)."""
    return sorted(WebhookMessage.objects.filter(payment_id=payment.pk).exclude(
        event_type="payment.recovery_started").values_list("event_type", flat=True))


def test_a_job_records_its_recharges_as_one_by_one_would(api, org):
    subscribe(org)
    together = [ingest(api, f"t-{i}", last4) for i, last4 in enumerate(["4242", "4242", "9995", "4242"])]
    alone = [ingest(api, f"a-{i}", last4) for i, last4 in enumerate(["4242", "4242", "9995", "4242"])]
    ids = claim(together + alone)

    outcomes = runner.run_job(ids[:4])
    for attempt_id in ids[4:]:
        runner.run_attempt(attempt_id)

    assert list(outcomes.values()) == ["succeeded", "succeeded", "declined", "succeeded"]
    # Each attempt charged once, with its own key.
    assert SandboxCharge.objects.count() == 8
    assert set(SandboxCharge.objects.values_list("idempotency_key", flat=True)) == set(
        RecoveryAttempt.objects.filter(pk__in=ids).values_list("idempotency_key", flat=True))
    for batched, single in zip(together, alone):
        batched.refresh_from_db()
        single.refresh_from_db()
        b_attempt, s_attempt = (p.attempts.order_by("sequence").first() for p in (batched, single))
        assert (b_attempt.status, b_attempt.outcome.split(" (")[0]) == (s_attempt.status, s_attempt.outcome.split(" (")[0])
        assert b_attempt.lease_expires_at is None and b_attempt.finished_at is not None
        assert (batched.status, batched.status_reason, batched.failure_count, batched.recovered_amount,
                batched.recovered_channel) == (single.status, single.status_reason, single.failure_count,
                                               single.recovered_amount, single.recovered_channel)
        # The same merchant webhooks: one per answer, one payment.recovered per recovered payment.
        assert webhooks(batched) == webhooks(single)
        audits = [(a.action, {k: v for k, v in a.data.items() if k != "reference"})
                  for a in AuditEvent.objects.filter(target_type="recovery.payment",
                                                     target_id__in=[str(batched.pk), str(single.pk)])]
        assert len(audits) == (2 if batched.status == PaymentStatus.RECOVERED else 0)
        assert not audits or audits[0] == audits[1]
        # A decline is a failure event and a new plan, as alone.
        assert [(a.sequence, a.kind, a.status) for a in batched.attempts.order_by("sequence")] == [
            (a.sequence, a.kind, a.status) for a in single.attempts.order_by("sequence")]
    recovered = [p for p in together if p.status == PaymentStatus.RECOVERED]
    assert len(recovered) == 3
    for payment in recovered:
        assert payment.recovered_attempt_id == payment.attempts.get(sequence=1).pk
        assert webhooks(payment) == ["attempt.succeeded", "payment.recovered"]
        assert AuditEvent.objects.filter(action="payment.recovered", target_id=str(payment.pk)).count() == 1
    declined = together[2]
    assert FailureEvent.objects.get(payment=declined, source="attempt").attempt.sequence == 1
    assert webhooks(declined) == ["attempt.failed"]


def test_a_job_records_its_answers_in_a_few_statements(api, org):
    subscribe(org)
    payments = [ingest(api, f"q-{i}", "9995" if i % 5 == 4 else "4242") for i in range(10)]
    ids = claim(payments)
    with CaptureQueriesContext(connection) as queries:
        outcomes = runner.run_job(ids)
    assert sorted(outcomes.values()) == ["declined"] * 2 + ["succeeded"] * 8
    # Per attempt the UPDATE that starts it (the sandbox's ledger, the PSP's side, not counted); for the job's
    # answers about twenty statements in all, webhooks and re-plans included (one by one: about 12 per attempt).
    ours = [q["sql"] for q in queries.captured_queries
            if "sandboxcharge" not in q["sql"] and "SAVEPOINT" not in q["sql"]]
    assert sum(1 for sql in ours if sql.startswith("UPDATE recovery_recoveryattempt SET status = 'running'")) == 10
    assert len(ours) <= 10 + 22, "\n".join(sql[:120] for sql in ours)


def test_a_second_recharge_of_one_payment_in_a_job_waits_for_the_first_answer(api):
    payment = ingest(api, "twice", "4242")
    first = claim([payment])[0]
    second = RecoveryAttempt.objects.create(
        organization_id=payment.organization_id, payment=payment, sequence=2, kind=AttemptKind.AUTO_RETRY,
        channel="psp", status=AttemptStatus.QUEUED, scheduled_for=timezone.now(), reason="A second re-charge.",
        amount=payment.amount, currency=payment.currency, lease_expires_at=timezone.now() + dispatch.lease(),
    )

    outcomes = runner.run_job([first, second.pk])

    # The first recovered the payment before the second could start: it was cancelled, never charged.
    assert outcomes == {first: "succeeded", second.pk: "not_queued"}
    second.refresh_from_db()
    assert second.status == AttemptStatus.CANCELLED
    assert SandboxCharge.objects.count() == 1


def test_worker_that_dies_after_charging_k_of_n_loses_no_charge_and_charges_none_twice(api, org, monkeypatch):
    subscribe(org)
    payments = [ingest(api, f"crash-{i}", "9995" if i == 1 else "4242") for i in range(5)]
    ids = claim(payments)
    real_charge = runner.charge
    calls = []

    def charge_then_die(provider, *, payment, attempt):
        if len(calls) == 3:  # the fourth attempt is marked running; the process dies before its charge
            raise WorkerDied
        calls.append(attempt.pk)
        return real_charge(provider, payment=payment, attempt=attempt)

    def die(charged):
        raise WorkerDied  # nothing after the death runs: the answers in hand are not recorded

    monkeypatch.setattr(runner, "charge", charge_then_die)
    monkeypatch.setattr(runner, "record_recharges", die)
    with pytest.raises(WorkerDied):
        runner.run_job(ids)
    monkeypatch.undo()

    # Charges 1..3 were made and are unrecorded: their attempts say "running" (the in-flight marker), not more.
    charges = dict(SandboxCharge.objects.values_list("idempotency_key", "charge_id"))
    assert len(charges) == 3
    states = {a.pk: a for a in RecoveryAttempt.objects.filter(pk__in=ids)}
    assert [states[pk].status for pk in ids] == ["running"] * 4 + ["queued"]
    assert all(states[pk].idempotency_key in charges for pk in ids[:3])
    assert not Payment.objects.filter(pk__in=[p.pk for p in payments], status=PaymentStatus.RECOVERED).exists()
    assert not WebhookMessage.objects.filter(event_type="payment.recovered").exists()

    # Before the leases run out nobody touches them; after, the scheduler claims all five again.
    assert dispatch.claim_due_attempts() == 0
    assert dispatch.claim_due_attempts(now=after_every_lease()) == 5
    outcomes = runner.run_job(ids)

    assert [outcomes[pk] for pk in ids] == ["succeeded", "declined", "succeeded", "succeeded", "succeeded"]
    # The PSP answered the re-runs of 1..3 with the charges it had made: no second charge, none lost.
    assert SandboxCharge.objects.count() == 5
    assert {k: v for k, v in SandboxCharge.objects.values_list("idempotency_key", "charge_id") if k in charges} == charges
    for payment, attempt_id in zip(payments, ids):
        payment.refresh_from_db()
        attempt = RecoveryAttempt.objects.get(pk=attempt_id)
        assert attempt.claims == 2
        assert attempt.psp_calls == (2 if attempt_id in ids[:4] else 1)
        if payment.reference == "crash-1":
            assert attempt.status == AttemptStatus.FAILED
            assert FailureEvent.objects.filter(payment=payment, source="attempt").count() == 1
            continue
        assert attempt.status == AttemptStatus.SUCCEEDED
        assert payment.status == PaymentStatus.RECOVERED and payment.recovered_attempt_id == attempt_id
        assert charges.get(attempt.idempotency_key, attempt.result["charge_id"]) == attempt.result["charge_id"]
        assert AuditEvent.objects.filter(action="payment.recovered", target_id=str(payment.pk)).count() == 1
        assert webhooks(payment) == ["attempt.succeeded", "payment.recovered"]


def test_death_while_recording_rolls_the_job_back_whole_and_the_rerun_records_it_once(api, org, monkeypatch):
    subscribe(org)
    payments = [ingest(api, f"mid-{i}", "4242") for i in range(3)]
    ids = claim(payments)

    def die(*args, **kwargs):
        raise WorkerDied  # after the attempts' UPDATE and its webhooks, before the payments'

    monkeypatch.setattr(transitions, "recover_many", die)
    with pytest.raises(WorkerDied):
        runner.run_job(ids)
    monkeypatch.undo()

    assert SandboxCharge.objects.count() == 3
    assert set(RecoveryAttempt.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"running"}
    assert not WebhookMessage.objects.exclude(event_type="payment.recovery_started").exists()
    dispatch.claim_due_attempts(now=after_every_lease())
    assert set(runner.run_job(ids).values()) == {"succeeded"}
    assert SandboxCharge.objects.count() == 3
    assert Payment.objects.filter(pk__in=[p.pk for p in payments], status=PaymentStatus.RECOVERED).count() == 3
    assert AuditEvent.objects.filter(action="payment.recovered").count() == 3
    assert WebhookMessage.objects.filter(event_type="payment.recovered").count() == 3


def test_recording_together_that_fails_records_each_answer_alone(api, org, monkeypatch):
    subscribe(org)
    payments = [ingest(api, f"fb-{i}", last4) for i, last4 in enumerate(["4242", "9995", "4242"])]
    ids = claim(payments)

    def fails(*args, **kwargs):
        raise RuntimeError("the batch write failed")

    monkeypatch.setattr(transitions, "recover_many", fails)
    outcomes = runner.run_job(ids)

    assert [outcomes[pk] for pk in ids] == ["succeeded", "declined", "succeeded"]
    assert SandboxCharge.objects.count() == 3
    assert Payment.objects.filter(pk__in=[p.pk for p in payments], status=PaymentStatus.RECOVERED).count() == 2
    assert AuditEvent.objects.filter(action="payment.recovered").count() == 2
    assert WebhookMessage.objects.filter(event_type="payment.recovered").count() == 2
    assert WebhookMessage.objects.filter(event_type__startswith="attempt.").count() == 3


# --- The batch transitions ----------------------------------------------------------------------------------


def _running(api, references, last4="4242"):
    payments = [ingest(api, reference, last4) for reference in references]
    attempts = []
    for attempt_id in claim(payments):
        attempt = RecoveryAttempt.objects.get(pk=attempt_id)
        now = timezone.now()
        assert transitions.begin_recharge(attempt, now=now, lease_until=now + leases.run_lease())
        attempts.append(attempt)
    return payments, attempts


def _fields(status=AttemptStatus.SUCCEEDED):
    return {"status": status, "outcome": "Charged.", "result": {"status": "succeeded"},
            "finished_at": timezone.now(), "lease_expires_at": None}


def test_begin_recharge_wins_once_and_reads_the_claim_as_stored(api):
    payment = ingest(api, "begin", "4242")
    attempt = RecoveryAttempt.objects.get(pk=claim([payment])[0])
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(claims=7)  # a re-claim since it was read
    now = timezone.now()

    assert transitions.begin_recharge(attempt, now=now, lease_until=now + leases.run_lease())
    assert (attempt.status, attempt.claims, attempt.psp_calls) == (AttemptStatus.RUNNING, 7, 1)
    assert not transitions.begin_recharge(attempt, now=now, lease_until=now + leases.run_lease())
    assert RecoveryAttempt.objects.get(pk=attempt.pk).psp_calls == 1


def test_finish_recharges_records_only_running_attempts_under_their_claim(api, org):
    subscribe(org)
    payments, attempts = _running(api, ["f-1", "f-2", "f-3"])
    RecoveryAttempt.objects.filter(pk=attempts[1].pk).update(claims=attempts[1].claims + 1)  # re-claimed meanwhile
    RecoveryAttempt.objects.filter(pk=attempts[2].pk).update(status=AttemptStatus.CANCELLED)
    heard = []

    def listen(sender, *, attempt, batch=None, **kwargs):
        heard.append((attempt.pk, batch is not None))

    signals.attempt_finished.connect(listen)
    try:
        with transaction.atomic():
            recorded = transitions.finish_recharges([(a, p, _fields(), "") for a, p in zip(attempts, payments)])
    finally:
        signals.attempt_finished.disconnect(listen)

    assert [item[0].pk for item in recorded] == [attempts[0].pk]
    assert heard == [(attempts[0].pk, True)]
    assert [RecoveryAttempt.objects.get(pk=a.pk).status for a in attempts] == ["succeeded", "running", "cancelled"]
    # The batch was flushed before returning: the webhook is written, one for the one attempt recorded.
    assert list(WebhookMessage.objects.exclude(event_type="payment.recovery_started").values_list(
        "event_type", "payment_id")) == [("attempt.succeeded", payments[0].pk)]


def test_recover_many_recovers_each_payment_once_with_its_audit_and_webhook(api, org):
    subscribe(org)
    payments, attempts = _running(api, ["r-1", "r-2", "r-3", "r-4"])
    link, _ = services.create_link(payment=payments[0])
    later = RecoveryAttempt.objects.create(
        organization_id=org.pk, payment=payments[0], sequence=2, kind=AttemptKind.NOTIFICATION, channel="email",
        scheduled_for=timezone.now() + timedelta(days=1), reason="A message.", amount=1, currency="EUR",
    )
    Payment.objects.filter(pk=payments[1].pk).update(status=PaymentStatus.RECOVERED)  # by someone else, meanwhile
    Payment.objects.filter(pk=payments[2].pk).update(status=PaymentStatus.CANCELLED)
    heard = []

    def listen(sender, *, payment, previous, batch=None, **kwargs):
        heard.append((payment.reference, previous))

    signals.payment_recovered.connect(listen)
    try:
        with transaction.atomic():
            locked = list(Payment.objects.select_for_update().select_related("organization")
                          .filter(pk__in=[p.pk for p in payments]).order_by("reference"))
            locked[1].status = PaymentStatus.RECOVERING  # as read before the other caller won (no lock held then)
            now = timezone.now()
            done = transitions.recover_many(
                [(p, 4999, a, f"Recovered by automatic retry {a.sequence}.") for p, a in zip(locked, attempts)]
                + [(locked[3], 4999, attempts[3], "Twice in one call.")], now=now)
    finally:
        signals.payment_recovered.disconnect(listen)

    # A cancelled payment's money is believed; the one recovered meanwhile is left alone; each payment once.
    assert [p.reference for p in done] == ["r-1", "r-3", "r-4"]
    assert heard == [("r-1", "recovering"), ("r-3", "cancelled"), ("r-4", "recovering")]
    for payment, attempt in zip(payments, attempts):
        payment.refresh_from_db()
        if payment.reference == "r-2":
            assert payment.recovered_attempt_id is None
            continue
        assert (payment.status, payment.recovered_attempt_id, payment.recovered_channel, payment.recovered_amount) == (
            PaymentStatus.RECOVERED, attempt.pk, "psp", 4999)
        assert AuditEvent.objects.get(action="payment.recovered", target_id=str(payment.pk)).data["attempt"] == 1
        assert WebhookMessage.objects.filter(payment_id=payment.pk, event_type="payment.recovered").count() == 1
    assert AuditEvent.objects.filter(action="payment.recovered").count() == 3
    later.refresh_from_db()
    link.refresh_from_db()
    assert later.status == AttemptStatus.CANCELLED and link.status == LinkStatus.REVOKED
    # The recovering attempts themselves are left to their own transition.
    assert set(RecoveryAttempt.objects.filter(pk__in=[a.pk for a in attempts]).values_list("status", flat=True)) == {
        "running"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_lease_renewal_skips_attempts_another_transaction_is_recording(api):
    _, attempts = _running(api, ["l-1", "l-2"])
    with leases.holding() as holding:
        for attempt in attempts:
            holding.add(attempt.pk, attempt.claims)
        # Another transaction (a job recording its answers) holds the first attempt's row. In autocommit, as the
        # heartbeat runs, that row is skipped, not waited for.
        with locked_elsewhere(RecoveryAttempt, attempts[0].pk):
            assert leases.renew() == 1
        assert leases.renew() == 2
    assert leases.renew() == 0


def pay_elsewhere(payment):
    """The customer pays through a pay link (or the merchant reports it paid) while a re-charge is running."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().select_related("organization").get(pk=payment.pk)
        assert transitions.recover(payment=locked, amount=locked.amount, now=timezone.now(), channel="email",
                                   detail="Paid through a pay link.")


@pytest.mark.parametrize("together", [True, False], ids=["job", "alone"])
def test_a_recharge_running_when_other_money_recovers_the_payment_is_recorded_and_alerted(api, org, monkeypatch,
                                                                                           together):
    subscribe(org)
    payment = ingest(api, "both", "4242")
    [attempt_id] = claim([payment])
    real_charge = runner.charge

    def charge_while_the_customer_pays(provider, *, payment, attempt):
        pay_elsewhere(payment)
        # The recovery cancels attempts not started; this one is at the PSP and keeps running.
        assert RecoveryAttempt.objects.get(pk=attempt.pk).status == AttemptStatus.RUNNING
        return real_charge(provider, payment=payment, attempt=attempt)

    monkeypatch.setattr(runner, "charge", charge_while_the_customer_pays)
    outcome = runner.run_job([attempt_id])[attempt_id] if together else runner.run_attempt(attempt_id)

    assert outcome == runner.RunOutcome.PAID_TWICE
    attempt = RecoveryAttempt.objects.get(pk=attempt_id)
    charge = SandboxCharge.objects.get(idempotency_key=attempt.idempotency_key)
    # The money the re-charge took is on its attempt, not dropped as a cancelled attempt's late answer.
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert attempt.result["charge_id"] == charge.charge_id
    payment.refresh_from_db()
    assert (payment.status, payment.recovered_attempt_id, payment.recovered_channel) == (
        PaymentStatus.RECOVERED, None, "email")
    alert = AuditEvent.objects.get(action="payment.possible_double_payment", target_id=str(payment.pk))
    assert alert.data["second_charge"] == charge.charge_id
    assert alert.data["first_charge"].startswith("recovered email at ")
    assert WebhookMessage.objects.filter(payment_id=payment.pk, event_type="payment.possible_double_payment").count() == 1


def test_a_recovery_cancels_the_attempts_not_started_and_leaves_a_running_one(api):
    payment = ingest(api, "left", "4242")
    [queued] = claim([payment])
    scheduled = RecoveryAttempt.objects.create(
        organization=payment.organization, payment=payment, sequence=9, kind=AttemptKind.AUTO_RETRY,
        status=AttemptStatus.SCHEDULED, scheduled_for=timezone.now() + timedelta(days=1), amount=payment.amount,
        currency=payment.currency, channel=Channel.PSP, reason="A later re-charge.")
    other = ingest(api, "left-2", "4242")
    [running] = claim([other])
    now = timezone.now()
    assert transitions.begin_recharge(RecoveryAttempt.objects.get(pk=running), now=now, lease_until=now + timedelta(minutes=1))

    pay_elsewhere(payment)
    pay_elsewhere(other)

    statuses = dict(RecoveryAttempt.objects.filter(pk__in=[queued, scheduled.pk, running]).values_list("pk", "status"))
    assert statuses == {queued: AttemptStatus.CANCELLED, scheduled.pk: AttemptStatus.CANCELLED,
                        running: AttemptStatus.RUNNING}
