"""Running recovery attempts: a job's re-charges (:func:`run_recharges`), its messages
(:func:`run_notification_attempts`), anything else one by one (:func:`run_attempt`); the
``run_attempts`` actor calls :func:`run_job` with the ids the scheduler sent together.

Lock order everywhere is payment, then attempt (ingestion and the manual
actions lock the payment first too), so runs and new failures never deadlock.
A re-charge happens outside any transaction (no row lock is held while the
PSP thinks), between two short transactions: the first marks the attempt
``running``, the second records what the PSP said. Meanwhile the worker renews
the attempt's short lease (recovery/leases.py). If the worker dies in between,
the lease expires within seconds, the scheduler claims the attempt again and the
re-run sends the same idempotency key: the PSP answers with the first result
instead of charging again. A job's re-charges are each started and charged the
same way, one after the other, and their answers recorded together in one
transaction (see :func:`run_recharges` for how that keeps the same guarantees).
"""

from __future__ import annotations

import logging
import time
from dataclasses import fields as dataclass_fields
from enum import StrEnum
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from recovery import leases, ports, services, signals, transitions
from recovery.classifier import classify
from recovery.models import (
    AttemptKind,
    AttemptStatus,
    Customer,
    FailureEvent,
    FailureSource,
    Payment,
    PaymentStatus,
    RecoveryAttempt,
    RetryPolicy,
)
from recovery.planning import PLANNED_FIELDS, plan_payments
from recovery.psp import ChargeResult, connected_accounts, credentials_refused, recharge_provider
from recovery.reports import failure_codes
from tinko import bulk
from tinko.models import Organization

logger = logging.getLogger(__name__)

# What a re-charge reads (a narrow row: this runs ten thousand times a minute).
START_FIELDS = [
    "id", "payment_id", "organization_id", "sequence", "kind", "channel", "status", "amount", "currency",
    "idempotency_key", "claims", "psp_calls", "payment__id", "payment__organization_id", "payment__reference", "payment__status",
    "payment__provider", "payment__provider_payment_id", "payment__amount", "payment__currency",
    "payment__card_brand", "payment__card_last4", "payment__card_fingerprint", "payment__customer_id",
    "payment__provider_account_id", "payment__provider_customer_id", "payment__provider_payment_method_id",
]

# A PSP error leaves the outcome unknown: the same attempt (same idempotency
# key) is tried again after a growing pause, until this many runs have asked the
# PSP. Counted in attempt.psp_calls, never in claims: a scheduler re-claim after
# a failed enqueue or an expired lease asks the PSP nothing, and must not use up
# the tries that find out whether the PSP charged.
MAX_PSP_CALLS = 5
ERROR_BACKOFF = timedelta(minutes=5)
# A charge the PSP took and has not settled (a mandate debit at the bank) is asked
# about again after a growing pause, up to this often; the provider decides when
# the PSP's settlement window has passed. Never a new charge meanwhile.
PENDING_FIRST_POLL = timedelta(minutes=15)
PENDING_MAX_POLL = timedelta(hours=6)


def _lock_payment(attempt_id, payment_id=None, related=()) -> Payment | None:
    # The customer and the policy load on first use unless asked for: only messages and re-plans need them.
    if payment_id is None:
        payment_id = Subquery(RecoveryAttempt.objects.filter(pk=attempt_id).values("payment_id"))
    try:
        return Payment.objects.select_for_update(of=("self",)).select_related("organization", *related).get(pk=payment_id)
    except Payment.DoesNotExist:
        return None


def _lock(attempt_id):
    """Lock the attempt's payment, then the attempt (the order every writer uses)."""
    payment = _lock_payment(attempt_id, related=("customer", "policy"))
    if payment is None:
        return None, None
    return payment, RecoveryAttempt.objects.select_for_update().get(pk=attempt_id)


class RunOutcome(StrEnum):
    """What one run of an attempt did (for logs, metrics and tests; the attempt's ``outcome`` says it to people)."""

    SUCCEEDED = "succeeded"  # the re-charge took the money
    PAID_TWICE = "paid_twice"  # the re-charge took the money of a payment other money had just recovered (alerted)
    DECLINED = "declined"  # the re-charge was declined; the payment is planned again
    PENDING_RESCHEDULED = "pending_rescheduled"  # the PSP has not decided yet: the same attempt runs again later
    ERROR_RESCHEDULED = "error_rescheduled"  # no answer or a PSP error: the same attempt (same key) runs again later
    SETTLED_BY_EARLIER_ATTEMPT = "settled_by_earlier_attempt"  # an earlier attempt's lost answer was a payment
    SETTLED_PAID = "settled_paid"  # paid at the PSP, not by Tinko: nothing charged
    SETTLED_CLOSED = "settled_closed"  # the debt is closed at the PSP: the recovery stops
    SENT = "sent"  # the message went out
    DEFERRED = "deferred"  # quiet hours or the daily cap: the message waits
    SKIPPED = "skipped"  # nothing could run it (no channel, no provider, a suppressed address)
    CANCELLED = "cancelled"  # the payment was already recovered or cancelled
    NOT_QUEUED = "not_queued"  # another run got to it first (it is no longer queued)
    SUPERSEDED = "superseded"  # a newer claim of the attempt records the answer
    MISSING = "missing"  # the attempt or its payment is gone
    ERROR = "error"  # running it raised; the scheduler claims it again


def run_attempt(attempt_id: int) -> RunOutcome:
    """Run a queued attempt once; return what happened (for logs and tests). Safe to call twice."""
    started = start_attempt(attempt_id)
    if isinstance(started, RunOutcome):
        return started
    payment, attempt = started
    # The lease is renewed while this process runs the attempt, and runs out soon after it dies.
    with leases.held(attempt.pk, attempt.claims):
        provider, why_not = recharge_provider(payment)
        result = charge(provider, payment=payment, attempt=attempt) if provider is not None else None
        if result is not None and result.code == ChargeResult.AUTHENTICATION_ERROR:
            credentials_refused(provider, result.message)
        return finish_attempt(attempt, result=result, why_not=why_not)


def start_attempt(attempt_id: int):
    """Check the attempt is still wanted and mark it ``running`` under a lease.

    Returns (payment, attempt) for a re-charge to make, or a :class:`RunOutcome` when the
    attempt needs nothing more (notifications are sent right here: they only
    write rows and enqueue mail after commit).
    """
    now = timezone.now()
    # A re-charge is claimed with one conditional UPDATE, no lock (transitions.start_recharge).
    if transitions.start_recharge(attempt_id, now=now, lease_until=now + leases.run_lease()):
        attempt = RecoveryAttempt.objects.select_related("payment").only(*START_FIELDS).get(pk=attempt_id)
        payment = attempt.payment
        if payment.status not in (PaymentStatus.RECOVERED, PaymentStatus.CANCELLED):
            return payment, attempt
    with transaction.atomic():
        payment, attempt = _lock(attempt_id)
        if attempt is None:
            return RunOutcome.MISSING
        if payment.status in (PaymentStatus.RECOVERED, PaymentStatus.CANCELLED) and attempt.status in (
            AttemptStatus.QUEUED, AttemptStatus.RUNNING
        ):
            transitions.finish(attempt, AttemptStatus.CANCELLED, f"The payment is already {payment.status}.",
                               now=now, payment=payment)
            return RunOutcome.CANCELLED
        if attempt.status != AttemptStatus.QUEUED:
            return RunOutcome.NOT_QUEUED
        return _notify(payment, attempt, now)


def charge(provider, *, payment, attempt) -> ChargeResult:
    """Ask the PSP to re-charge, outside any transaction. MOVES MONEY, once per idempotency key."""
    try:
        return provider.charge_off_session(
            payment=payment, amount=attempt.amount, currency=attempt.currency, idempotency_key=attempt.idempotency_key
        )
    except Exception as exc:  # the PSP's SDK may raise anything; the outcome is then unknown
        logger.exception("Re-charge of attempt %s raised", attempt.pk)
        return ChargeResult(status="error", message=f"{type(exc).__name__}: {exc}"[:300])


def finish_attempt(attempt: RecoveryAttempt, *, result: ChargeResult | None, why_not: str = "") -> RunOutcome:
    """Record the PSP's answer for a running attempt (as started), end or re-plan the recovery."""
    now = timezone.now()
    fields, decline = _answer_fields(attempt, result, why_not, now)
    with transaction.atomic():
        payment = _lock_payment(attempt.pk, attempt.payment_id)
        # Only the run that holds the current claim records its answer; after a
        # lease ran out, the newer run does (it gets the same answer from the PSP).
        code = (result.decline_code or result.code) if result is not None else ""
        if not transitions.record_recharge(attempt, payment=payment, fields=fields, code=code):
            return RunOutcome.SUPERSEDED
        if result is None:
            _replan(payment, now)
            return RunOutcome.SKIPPED
        if result.status == ChargeResult.SETTLED:
            return _settled(payment, result, now)
        if result.status == "succeeded":
            if transitions.recover(
                payment=payment, amount=result.amount or attempt.amount, now=now, attempt=attempt,
                detail=_recovered_by(attempt),
            ) or payment.recovered_attempt_id == attempt.pk:
                return RunOutcome.SUCCEEDED
            return _paid_twice(payment, attempt, result)
        if attempt.status == AttemptStatus.SCHEDULED:
            return RunOutcome.PENDING_RESCHEDULED if result.status == ChargeResult.PENDING else RunOutcome.ERROR_RESCHEDULED
        event = _record_decline(payment, attempt, result, decline, now)
        _replan(payment, now, event=event)
        return RunOutcome.DECLINED


def _paid_twice(payment, attempt, result: ChargeResult) -> RunOutcome:
    """The re-charge went through after other money (a pay link, the merchant's "paid") recovered the payment.

    It was running when that happened, so the recovery left it alone (transitions.NOT_STARTED): its
    answer is recorded on the attempt and the merchant is alerted, so that no charge goes unaccounted.
    """
    transitions.paid_twice(
        payment=payment, first=transitions.recovered_by(payment), second=result.charge_id or attempt.idempotency_key,
        amount=result.amount or attempt.amount, currency=attempt.currency,
    )
    return RunOutcome.PAID_TWICE


def _recovered_by(attempt) -> str:
    return f"Recovered by automatic retry {attempt.sequence}."


def _answer_fields(attempt, result: ChargeResult | None, why_not: str, now) -> tuple[dict, object]:
    """What the PSP's answer writes on the attempt, and the decline's classification (None unless declined)."""
    decline = None
    fields = {"finished_at": now, "lease_expires_at": None}
    if result is None:
        fields.update(status=AttemptStatus.SKIPPED, outcome=why_not)
    else:
        fields["result"] = _result_data(result)
        if result.status == "succeeded":
            fields.update(
                status=AttemptStatus.SUCCEEDED,
                outcome=f"Charged {result.amount} {result.currency} ({result.charge_id})" + _card_words(result) + ".",
            )
        elif result.status == ChargeResult.SETTLED:
            fields.update(status=AttemptStatus.SKIPPED, outcome=result.message)
        elif result.status == ChargeResult.PENDING:
            wait = min(PENDING_FIRST_POLL * 2 ** (max(attempt.psp_calls, 1) - 1), PENDING_MAX_POLL)
            fields.update(
                status=AttemptStatus.SCHEDULED, scheduled_for=now + wait, finished_at=None,
                outcome=(
                    f"{result.message or 'The PSP has not settled the charge yet.'} Asking again in "
                    f"{int(wait.total_seconds() // 60)} minutes with the same idempotency key; no new charge meanwhile."
                ),
            )
        elif result.status == "error" and attempt.psp_calls < MAX_PSP_CALLS:
            wait = ERROR_BACKOFF * 2 ** (max(attempt.psp_calls, 1) - 1)
            what = result.message or result.code or "error"
            fields.update(
                status=AttemptStatus.SCHEDULED, scheduled_for=now + wait, finished_at=None,
                outcome=(
                    # A PSP that refused the request says so ("provider rejected the request: …"); it is no decline.
                    (f"{what[:1].upper()}{what[1:]}" if what.startswith("provider rejected the request") else
                     f"The PSP did not give an answer ({what})")
                    + f"; trying again in {int(wait.total_seconds() // 60)} minutes with the same idempotency key."
                ),
            )
        else:
            decline = _classify_decline(attempt.payment, result)
            fields.update(status=AttemptStatus.FAILED, outcome=f"Declined: {decline.reason}" + _card_words(result, "; "))
    return fields, decline


def _card_words(result: ChargeResult, joiner: str = " ") -> str:
    """Which card the PSP charged and why, for the attempt's outcome on the timeline."""
    if not result.card:
        return ""
    return f"{joiner}with {result.card}" if joiner == " " else f"{joiner}card: {result.card}"


def _settled(payment, result: ChargeResult, now) -> RunOutcome:
    """The debt closed at the PSP before the re-charge (nothing was charged): end or stop the recovery with why."""
    if result.code == ChargeResult.EARLIER_ATTEMPT_PAID:
        # An earlier attempt's re-charge took the money though its answers were lost: that attempt recovered it.
        earlier = RecoveryAttempt.objects.filter(payment=payment, idempotency_key=result.attempt_key).first()
        transitions.recover(
            payment=payment, amount=result.amount or payment.amount, now=now, attempt=earlier,
            detail=(f"Recovered by automatic retry {earlier.sequence} (its answer was lost; the payment provider confirmed "
                    f"{result.charge_id} before a new re-charge)." if earlier is not None
                    else f"Paid at the payment provider: {result.message}"),
        )
        return RunOutcome.SETTLED_BY_EARLIER_ATTEMPT
    if result.code == "invoice_paid":
        transitions.recover(payment=payment, amount=result.amount or payment.amount, now=now,
                            detail=f"Paid at the payment provider, not by Tinko: {result.message}")
        return RunOutcome.SETTLED_PAID
    transitions.cancel(payment=payment, now=now, reason=f"Recovery stopped: {result.message}")
    return RunOutcome.SETTLED_CLOSED


def _result_data(result: ChargeResult) -> dict:
    # Not asdict(): it deep-copies ``raw`` (the PSP's whole answer) only for it to be dropped here.
    values = ((f.name, getattr(result, f.name)) for f in dataclass_fields(result) if f.name != "raw")
    return {k: v for k, v in values if v not in ("", None, False)}


def _decline_codes(result: ChargeResult) -> dict:
    # A PSP that never answered (after every retry of the same key) counts as a processing error.
    return {**failure_codes(result), "code": result.code or ("processing_error" if result.status == "error" else "")}


def _classify_decline(payment, result: ChargeResult):
    return classify(
        organization=payment.organization_id, provider=payment.provider, card_brand=payment.card_brand,
        **_decline_codes(result),
    )


def _record_decline(payment, attempt, result: ChargeResult, c, now) -> FailureEvent:
    event = _decline_event(payment, attempt, result, c, now)
    event.save(force_insert=True)
    return event


def _decline_event(payment, attempt, result: ChargeResult, c, now) -> FailureEvent:
    """The decline as a new (unsaved) FailureEvent; the payment counts the failure."""
    event = bulk.build(
        FailureEvent, organization_id=payment.organization_id, payment_id=payment.pk, source=FailureSource.ATTEMPT,
        # The attempt's own key: a re-run after a crash cannot record the decline twice.
        external_id=attempt.idempotency_key, occurred_at=now, raw=_result_data(result), attempt_id=attempt.pk,
        **_decline_codes(result), **c.event_fields(),
    )
    payment.failure_count += 1
    payment.last_failed_at = now
    return event


def _replan(payment, now, *, event: FailureEvent | None = None) -> None:
    event = event or FailureEvent.objects.filter(payment=payment).order_by("-occurred_at", "-pk").first()
    if event is None:
        return
    previous = {payment.pk: payment.status}
    plan_payments(organization=payment.organization, payments=[payment], latest={payment.reference: event}, now=now)
    payment.updated_at = now
    transitions.save_plans([payment], fields=[*PLANNED_FIELDS, "failure_count", "last_failed_at", "updated_at"], previous=previous)


def _notify(payment, attempt, now) -> RunOutcome:
    result = ports.messenger().send_for_attempt(payment=payment, attempt=attempt, now=now)
    if result.retry_at is not None:
        # Quiet hours or the 24-hour cap: the same message goes out when they allow.
        transitions.defer(attempt, scheduled_for=result.retry_at, outcome=result.outcome)
        return RunOutcome.DEFERRED
    transitions.finish(attempt, AttemptStatus.SUCCEEDED if result.sent else AttemptStatus.SKIPPED, result.outcome,
                       now=now, payment=payment)
    _replan(payment, now)
    return RunOutcome.SENT if result.sent else RunOutcome.SKIPPED


# --- A job's re-charges: charged one by one, recorded together ---------------------------------------------

# A job's re-charge answers are recorded together once the oldest unrecorded one is this old (seconds), and at
# the end of the job. On the sandbox a job of ten takes a few milliseconds and is recorded at once; against a PSP
# that takes 0.5 s a charge, every two or three. It bounds how long a charge the PSP made waits, unrecorded, for
# its attempt to say so (the attempt is ``running`` meanwhile: see :func:`run_recharges`).
RECORD_WITHIN = 1.0


def run_recharges(attempt_ids: list[int]) -> tuple[dict[int, RunOutcome], list[int]]:
    """Re-charge a job's queued automatic retries one by one and record their answers together.

    Returns (what happened to the attempts handled here, the ids left to :func:`run_attempt`: anything that is
    not a queued re-charge of an open payment, and a second re-charge of a payment already charged in this job,
    which must see the first one's answer before it may charge).

    Money safety, as for :func:`run_attempt`, attempt by attempt:

    - each attempt is marked ``running`` (a conditional UPDATE, committed at once) just before its charge, so
      of two runs only one charges, and a cancellation or a recovery that came first (they cancel queued
      attempts) stops it; the charge carries the attempt's idempotency key;
    - the answers that end an attempt (succeeded, declined) are recorded in one transaction for the job (or
      every :data:`RECORD_WITHIN` seconds): the attempts, the payments recovered, their audit entries and the
      merchant webhooks, the declines' failure events and the payments' new plans all commit together or not
      at all; any other answer (no answer, pending, settled, no provider) is recorded at once, alone;
    - until its answer is recorded, an attempt stays ``running`` and this process renews its lease. If the
      worker dies after charging attempts 1..k of the job, their leases run out within seconds, the scheduler
      claims them again, and each re-run asks the PSP with the same idempotency key: the PSP answers with the
      charge it made (no second one), and that answer is recorded. Attempts k+1..N were never started: they
      are still ``queued`` and are claimed again when the scheduler's lease runs out;
    - if recording the job together fails, it rolls back whole and each answer is recorded alone
      (:func:`finish_attempt`); one that fails even so stays ``running`` and is re-run as above.

    Locks: the payments in the order ingestion locks them (organization, reference), then the attempts, as
    everywhere in the engine.
    """
    attempts = {
        a.pk: a for a in RecoveryAttempt.objects.select_related("payment").only(*START_FIELDS).filter(
            pk__in=attempt_ids, status=AttemptStatus.QUEUED, kind=AttemptKind.AUTO_RETRY
        )
    }
    mine, alone, payments = [], [], set()
    for attempt_id in attempt_ids:
        attempt = attempts.get(attempt_id)
        if (attempt is None or attempt.payment_id in payments
                or attempt.payment.status in (PaymentStatus.RECOVERED, PaymentStatus.CANCELLED)):
            alone.append(attempt_id)
            continue
        payments.add(attempt.payment_id)
        mine.append(attempt)
    if not mine:
        return {}, alone
    accounts = connected_accounts([a.payment for a in mine])
    outcomes: dict[int, RunOutcome] = {}
    charged: list[tuple[RecoveryAttempt, ChargeResult]] = []
    oldest = 0.0
    with leases.holding() as holding:
        try:
            for attempt in mine:
                now = timezone.now()
                if not transitions.begin_recharge(attempt, now=now, lease_until=now + leases.run_lease()):
                    alone.append(attempt.pk)  # no longer queued: run_attempt says what became of it
                    continue
                holding.add(attempt.pk, attempt.claims)
                payment = attempt.payment
                provider, why_not = recharge_provider(payment, accounts)
                result = charge(provider, payment=payment, attempt=attempt) if provider is not None else None
                if result is not None and result.code == ChargeResult.AUTHENTICATION_ERROR:
                    credentials_refused(provider, result.message)
                if result is None or result.status not in (ChargeResult.SUCCEEDED, ChargeResult.DECLINED):
                    outcomes[attempt.pk] = _finish_alone(attempt, result, why_not)
                    holding.release([attempt.pk])
                    continue
                if not charged:
                    oldest = time.monotonic()
                charged.append((attempt, result))
                if time.monotonic() - oldest >= RECORD_WITHIN:
                    outcomes.update(record_recharges(charged))
                    holding.release([a.pk for a, _ in charged])
                    charged = []
        finally:
            # Also when the loop stops early (an error, the job's time limit): the answers in hand are recorded.
            if charged:
                outcomes.update(record_recharges(charged))
    return outcomes, alone


def _finish_alone(attempt, result: ChargeResult | None, why_not: str = "") -> RunOutcome:
    try:
        return finish_attempt(attempt, result=result, why_not=why_not)
    except Exception:
        # Left running under its lease: the scheduler claims it again, and the re-run asks the PSP with the same key.
        logger.exception("Recording the answer of attempt %s failed; the scheduler will claim it again", attempt.pk)
        return RunOutcome.ERROR


def record_recharges(charged: list[tuple[RecoveryAttempt, ChargeResult]]) -> dict[int, RunOutcome]:
    """Record running re-charges' answers (succeeded or declined) together; alone, one by one, if that fails."""
    try:
        with transaction.atomic():
            return _record_together(charged)
    except Exception:
        logger.exception("Recording attempts %s together failed; recording them one by one", [a.pk for a, _ in charged])
    return {attempt.pk: _finish_alone(attempt, result) for attempt, result in charged}


def _record_together(charged) -> dict[int, RunOutcome]:
    """Inside a transaction: :func:`finish_attempt` for many succeeded or declined re-charges, in a few statements."""
    now = timezone.now()
    # bulk.fetch, not a QuerySet: building the ORM's query cost more CPU than PostgreSQL took to answer it.
    payments = {
        p.pk: p for p in bulk.fetch(Payment, Q(id__in=[attempt.payment_id for attempt, _ in charged]),
                                    order_by=("organization_id", "reference"), lock=True)
    }
    _attach(payments.values(), "organization", Organization)
    outcomes, items, declines = {}, [], {}
    for attempt, result in charged:
        payment = payments.get(attempt.payment_id)
        if payment is None:
            outcomes[attempt.pk] = RunOutcome.MISSING
            continue
        fields, decline = _answer_fields(attempt, result, "", now)
        items.append((attempt, payment, fields, result.decline_code or result.code))
        if decline is not None:
            declines[attempt.pk] = decline
    batch = signals.Batch()
    recorded = {attempt.pk for attempt, *_ in transitions.finish_recharges(items, batch=batch)}
    results = dict((attempt.pk, result) for attempt, result in charged)
    recoveries, declined = [], []
    for attempt, payment, _, _ in items:
        if attempt.pk not in recorded:
            outcomes[attempt.pk] = RunOutcome.SUPERSEDED
        elif attempt.status == AttemptStatus.SUCCEEDED:
            result = results[attempt.pk]
            recoveries.append((payment, result.amount or attempt.amount, attempt, _recovered_by(attempt)))
            outcomes[attempt.pk] = RunOutcome.SUCCEEDED
        else:
            declined.append((payment, attempt))
            outcomes[attempt.pk] = RunOutcome.DECLINED
    won = {payment.pk for payment in transitions.recover_many(recoveries, now=now, batch=batch)}
    for payment, _, attempt, _ in recoveries:
        if payment.pk not in won and payment.recovered_attempt_id != attempt.pk:
            outcomes[attempt.pk] = _paid_twice(payment, attempt, results[attempt.pk])
    # The webhooks of the answers and recoveries go before those of the re-plans (payment.exhausted), as one by one.
    batch.flush()
    if declined:
        # What the re-plans read: the customers and the policies (the recoveries need neither).
        _attach([payment for payment, _ in declined], "customer", Customer)
        _attach([payment for payment, _ in declined], "policy", RetryPolicy)
        events = {
            payment.pk: _decline_event(payment, attempt, results[attempt.pk], declines[attempt.pk], now)
            for payment, attempt in declined
        }
        # bulk_create: one INSERT … FROM UNNEST, as plan_payments inserts the new attempts.
        FailureEvent.objects.bulk_create(events.values())
        _replan_many([payment for payment, _ in declined], now, events=events)
    return outcomes


def _attach(payments, name: str, model) -> None:
    """Load the payments' related ``name`` rows (a foreign key to ``model``) in one read and attach them."""
    attname = Payment._meta.get_field(name).attname
    ids = {getattr(p, attname) for p in payments} - {None}
    rows = {row.pk: row for row in bulk.fetch(model, Q(id__in=ids))} if ids else {}
    for payment in payments:
        setattr(payment, name, rows.get(getattr(payment, attname)))


# --- A job's messages together ------------------------------------------------------------------------


def run_job(attempt_ids: list[int]) -> dict[int, RunOutcome]:
    """Run a job's claimed attempts: re-charges charged one by one and recorded together (:func:`run_recharges`),
    then messages together and whatever is left alone (:func:`run_notification_attempts`). Returns what happened
    to each."""
    try:
        outcomes, rest = run_recharges(attempt_ids)
    except Exception:
        # Reading the job failed, or something between charges: the answers in hand were recorded on the way out
        # (run_recharges); an attempt started and not recorded stays running under its lease until the scheduler
        # claims it again. The rest runs alone (an attempt no longer queued is left as it is).
        logger.exception("Running the re-charges of %s together failed; running them one by one", attempt_ids)
        outcomes, rest = {}, list(attempt_ids)
    if rest:
        outcomes.update(run_notification_attempts(rest))
    return outcomes


def run_notification_attempts(attempt_ids: list[int]) -> dict[int, RunOutcome]:
    """Run a job's message attempts together: what :func:`run_attempt` does for each, in far fewer queries.

    One transaction locks the messages' payments (in the order ingestion locks
    them) and then the attempts, reads the respect rules' facts once (suppression
    records, the 24-hour cap), records each message as :func:`_notify` does and
    re-plans the payments at once. Anything else (a re-charge, an attempt no
    longer queued, a payment already settled, a second message for one payment)
    runs afterwards through :func:`run_attempt`. If the batch fails, it is rolled
    back whole (nothing is sent: messages leave only after commit) and every
    attempt runs alone, so one failing attempt does not stop the others.
    Returns what happened to each attempt (for logs and tests).
    """
    try:
        with transaction.atomic():
            outcomes, alone = _notify_together(attempt_ids)
    except Exception:
        logger.exception("Running attempts %s together failed; running them one by one", attempt_ids)
        outcomes, alone = {}, list(attempt_ids)
    for attempt_id in alone:
        try:
            outcomes[attempt_id] = run_attempt(attempt_id)
        except Exception:
            logger.exception("Recovery attempt %s failed to run; the scheduler will claim it again", attempt_id)
            outcomes[attempt_id] = RunOutcome.ERROR
    return outcomes


def _notify_together(attempt_ids: list[int]) -> tuple[dict[int, str], list[int]]:
    """Inside a transaction: (outcomes of the messages handled here, ids left to :func:`run_attempt`)."""
    messenger = ports.messenger()
    now = timezone.now()
    messages = RecoveryAttempt.objects.filter(pk__in=attempt_ids, kind=AttemptKind.NOTIFICATION)
    payments = {
        p.pk: p
        for p in Payment.objects.select_for_update(of=("self",))
        .select_related("organization", "customer", "policy")
        .filter(pk__in=messages.values("payment_id"))
        .order_by("organization_id", "reference")
    }
    if not payments:  # a job of re-charges only
        return {}, list(attempt_ids)
    attempts = list(messages.select_for_update().order_by("pk"))
    handled, mine = set(), []
    for attempt in attempts:
        payment = payments.get(attempt.payment_id)
        if (
            attempt.status != AttemptStatus.QUEUED or payment is None or attempt.payment_id in handled
            or payment.status in (PaymentStatus.RECOVERED, PaymentStatus.CANCELLED)
        ):
            continue
        handled.add(attempt.payment_id)
        attempt.payment = payment
        mine.append(attempt)
    together = {a.pk for a in mine}
    alone = [pk for pk in attempt_ids if pk not in together]
    if not mine:
        return {}, alone

    facts = messenger.load_facts(
        [(a.payment.organization, a.payment.customer, a.channel,
          messenger.address_for(a.payment.customer, a.channel)) for a in mine], now=now
    )
    outcomes, finished, replan = {}, [], []
    # The job's new pay links, then its Notification rows, are inserted together when the loop ends (in that
    # order: the inner block ends first), before the attempts' UPDATE.
    with messenger.stored_together(), services.preloaded_links([a.payment for a in mine], now=now):
        for attempt in mine:
            _notify_one(messenger, attempt, now=now, facts=facts, outcomes=outcomes, finished=finished, replan=replan)
    if finished:
        # Before the re-plan: a payment whose attempt still looks queued is not planned again.
        transitions.finish_messages(finished, now=now)
        _replan_many(replan, now)
    return outcomes, alone


def _notify_one(messenger, attempt, *, now, facts, outcomes: dict, finished: list, replan: list) -> None:
    """Record one message of :func:`_notify_together` (queued, suppressed or deferred) and note what follows."""
    result = messenger.send_for_attempt(payment=attempt.payment, attempt=attempt, now=now, facts=facts)
    if result.retry_at is not None:
        # Quiet hours or the 24-hour cap: the same message goes out when they allow.
        transitions.defer(attempt, scheduled_for=result.retry_at, outcome=result.outcome)
        outcomes[attempt.pk] = RunOutcome.DEFERRED
        return
    attempt.status = AttemptStatus.SUCCEEDED if result.sent else AttemptStatus.SKIPPED
    attempt.outcome = result.outcome
    finished.append(attempt)
    replan.append(attempt.payment)
    outcomes[attempt.pk] = RunOutcome.SENT if result.sent else RunOutcome.SKIPPED


def _replan_many(payments: list[Payment], now, *, events: dict | None = None) -> None:
    """:func:`_replan` for several locked payments: their latest failures in one read, one plan per organization.

    ``events``: each payment's latest failure by payment id, when the caller has them (new declines).
    """
    from django.db.models import OuterRef

    if events is None:
        latest_event = FailureEvent.objects.filter(payment_id=OuterRef("payment_id")).order_by("-occurred_at", "-pk")
        events = {
            e.payment_id: e
            for e in FailureEvent.objects.filter(
                payment_id__in=[p.pk for p in payments], pk=Subquery(latest_event.values("pk")[:1])
            )
        }
    planned = [p for p in payments if p.pk in events]
    previous = {p.pk: p.status for p in planned}
    by_org: dict[int, list[Payment]] = {}
    for payment in planned:
        by_org.setdefault(payment.organization_id, []).append(payment)
    for group in by_org.values():
        plan_payments(organization=group[0].organization, payments=group,
                      latest={p.reference: events[p.pk] for p in group}, now=now)
    for payment in planned:
        payment.updated_at = now
    transitions.save_plans(planned, fields=[*PLANNED_FIELDS, "failure_count", "last_failed_at", "updated_at"], previous=previous)
