"""Every status change of a payment, a recovery attempt and a pay link: one function each.

pretix's ``OrderPayment.confirm()`` is the only way an order payment is
confirmed, whoever calls it; here the API, the console, the pay pages, PSP
webhooks, the scheduler and the runner all change a status through this module.

Each function makes its change as a conditional ``UPDATE … WHERE status IN (the
states it may leave)`` and says whether it happened, so of two callers racing
for the same change exactly one wins, even one that forgot a lock. Callers that
read before they decide (a payment's plan, its attribution) hold the payment's
row lock first (``select_for_update``), payment before attempt, as everywhere
in the engine. Paths that work on many rows at once (ingestion, the scheduler's
claim, the sweeps, a worker's batch of messages or of re-charge answers) keep
doing it in one statement: the bulk functions below take the rows the caller
locked and checked, and those that race other callers (``finish_recharges``,
``recover_many``) stay conditional row by row (``UPDATE … FROM unnest(…) WHERE
status IN (…) RETURNING id``): each row changes for exactly one caller, and only
the rows that changed are audited and announced, as by the single functions.
Their signals carry a ``batch`` (:class:`recovery.signals.Batch`) in which
receivers may gather their writes.

What happened is announced through :mod:`recovery.signals`, inside the
transaction; receivers that reach the outside world (merchant webhooks) write
their rows in it and send after commit. Money-relevant changes of a payment
(recovered, cancelled) leave an AuditEvent. Attempts and links carry their own
record (outcome, result and timestamps; open counts) and are not audited one by
one: ten thousand attempts a minute would double the engine's writes.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.db import connection
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from recovery import signals
from recovery.models import (
    AttemptKind,
    AttemptStatus,
    LinkStatus,
    Payment,
    PaymentStatus,
    RecoveryAttempt,
    RecoveryLink,
)
from tinko import bulk, metrics
from tinko.models import AuditEvent
from tinko.services import record_audit, record_audits

# --- Payments --------------------------------------------------------------------------------------------

# The states a planned status (what the planner decides after each failure or attempt) may replace: a
# recovered or cancelled payment is never re-opened by a plan.
PLANNABLE = frozenset({PaymentStatus.FAILED, PaymentStatus.RECOVERING, PaymentStatus.EXHAUSTED})
# Money that arrived is believed whatever the recovery's state, even a cancelled one: Tinko must be able to
# account for every charge.
RECOVERABLE = frozenset({*PLANNABLE, PaymentStatus.CANCELLED})
CANCELLABLE = PLANNABLE

ALLOWED = {
    PaymentStatus.FAILED: PLANNABLE,
    PaymentStatus.RECOVERING: PLANNABLE,
    PaymentStatus.EXHAUSTED: PLANNABLE,
    PaymentStatus.RECOVERED: RECOVERABLE,
    PaymentStatus.CANCELLED: CANCELLABLE,
}


def can_move(current: str, new: str) -> bool:
    """Whether a payment may go from ``current`` to ``new``."""
    return current in ALLOWED.get(new, ())


def plan(payment, status: str, reason: str) -> bool:
    """Set a planned status and its reason on ``payment`` in memory; True if the status changed.

    For the paths that plan many payments at once (ingestion, the runner's
    re-plans): they hold the rows' locks, and :func:`save_plans` writes the plans.
    A status a plan may not set (a recovered or cancelled payment is never
    re-opened) is refused with ValueError.
    """
    if status != payment.status and not can_move(payment.status, status):
        raise ValueError(f"A plan cannot move payment {payment.pk} from {payment.status} to {status}.")
    changed = status != payment.status
    payment.status = status
    payment.status_reason = reason
    return changed


def save_plans(payments, *, fields, previous: dict, written=None) -> None:
    """Write the planned payments' ``fields`` in one ``UPDATE`` and announce what their plans changed.

    ``previous``: each payment's status before its plan, by pk. ``written``: the
    payments to write when the caller already inserted some of them (ingestion's
    new payments go in with their first plan); all of them otherwise.
    """
    bulk.update(Payment, payments if written is None else written, fields)
    exhausted = [
        p for p in payments if p.status == PaymentStatus.EXHAUSTED and previous.get(p.pk, "") != PaymentStatus.EXHAUSTED
    ]
    if exhausted:
        signals.recovery_exhausted.send(sender=Payment, payments=exhausted)


def recovery_started(*, organization_id: int, payments) -> None:
    """Payments first reported (just written by ingestion, with their first plan): their recovery begins."""
    if payments:
        signals.recovery_started.send(sender=Payment, organization_id=organization_id, payments=payments)


def plan_recharge(*, payment, reason: str, now, limit_code: str = "") -> bool:
    """An open (or exhausted) payment gets a planned re-charge: ``recovering``. The caller holds the payment's lock.

    ``limit_code``: the card-network limit that moved the re-charge, if one did (kept otherwise).
    """
    limit_code = limit_code or payment.limit_code
    if not Payment.objects.filter(pk=payment.pk, status__in=PLANNABLE).update(
        status=PaymentStatus.RECOVERING, status_reason=reason, limit_code=limit_code, updated_at=now
    ):
        return False
    payment.status, payment.status_reason, payment.limit_code, payment.updated_at = (
        PaymentStatus.RECOVERING, reason, limit_code, now)
    return True


def recover(
    *, payment, amount: int, now, attempt: RecoveryAttempt | None = None, link: RecoveryLink | None = None,
    channel: str = "", detail: str = "",
) -> bool:
    """End a recovery with success; False if it was already recovered. The caller holds the payment's row lock.

    Attribution: the attempt (and its channel) or the link that brought the
    money back; without ``channel``, a link's is the channel that carried it.
    Remaining attempts are cancelled; the paying link is completed, other live
    links revoked. Audited ``payment.recovered``; announced as
    :data:`recovery.signals.payment_recovered`. Must not move money.
    """
    if payment.status == PaymentStatus.RECOVERED:
        return False
    previous = payment.status
    recovered_channel = channel or (
        link_channel(link) if link is not None else attempt.channel if attempt is not None else ""
    )
    reason = detail or "Recovered."
    if not Payment.objects.filter(pk=payment.pk, status__in=RECOVERABLE).update(
        status=PaymentStatus.RECOVERED, recovered_at=now, recovered_amount=amount,
        recovered_attempt=attempt, recovered_channel=recovered_channel, status_reason=reason, updated_at=now,
    ):
        return False
    payment.status = PaymentStatus.RECOVERED
    payment.recovered_at = now
    payment.recovered_amount = amount
    payment.recovered_attempt = attempt
    payment.recovered_channel = recovered_channel
    payment.status_reason = reason
    payment.updated_at = now
    if link is not None:
        complete_link(link, now=now)
    _end_pending(payment=payment, now=now, attempt=attempt, link=link)
    metrics.payment_recovered(amount=amount, currency=payment.currency, channel=recovered_channel)
    signals.payment_recovered.send(sender=Payment, payment=payment, attempt=attempt, link=link, previous=previous)
    record_audit(
        organization=payment.organization, action="payment.recovered", target=payment,
        data={
            "reference": payment.reference, "from": previous, "amount": amount, "currency": payment.currency,
            "channel": recovered_channel, "attempt": attempt.sequence if attempt else None,
        },
    )
    return True


RECOVERED_FIELDS = ("status", "recovered_at", "recovered_amount", "recovered_attempt", "recovered_channel",
                    "status_reason", "updated_at")


def recover_many(items, *, now, batch: signals.Batch | None = None) -> list:
    """:func:`recover` for many payments, each by one of its re-charges (a worker's job); returns the payments recovered.

    ``items``: (payment, amount, attempt, detail) with payments the caller
    locked. One conditional ``UPDATE … WHERE status IN (RECOVERABLE)`` for all,
    one statement that cancels their other active attempts and revokes their
    live links, the audit entries in one write; each recovery is announced as
    :data:`recovery.signals.payment_recovered` as :func:`recover` does, with
    ``batch`` (a new one, flushed here, when not given: the caller flushes its own).
    """
    rows, wanted = [], {}
    for payment, amount, attempt, detail in items:
        if payment.status == PaymentStatus.RECOVERED or payment.pk in wanted:
            continue
        rows.append(SimpleNamespace(
            pk=payment.pk, status=PaymentStatus.RECOVERED, recovered_at=now, recovered_amount=amount,
            recovered_attempt_id=attempt.pk, recovered_channel=attempt.channel, status_reason=detail or "Recovered.",
            updated_at=now,
        ))
        wanted[payment.pk] = (payment, amount, attempt)
    won = bulk.update_if(Payment, rows, list(RECOVERED_FIELDS), where=Q(status__in=RECOVERABLE))
    done = []
    for row in rows:
        if row.pk not in won:
            continue
        payment, amount, attempt = wanted[row.pk]
        previous = payment.status
        for name in RECOVERED_FIELDS:
            if name != "recovered_attempt":
                setattr(payment, name, getattr(row, name))
        payment.recovered_attempt = attempt
        done.append((payment, attempt, previous))
    if not done:
        return []
    _end_pending_many(done, now=now)
    own_batch = batch is None
    batch = batch or signals.Batch()
    audits = []
    for payment, attempt, previous in done:
        metrics.payment_recovered(amount=payment.recovered_amount, currency=payment.currency,
                                  channel=payment.recovered_channel)
        signals.payment_recovered.send(sender=Payment, payment=payment, attempt=attempt, link=None, previous=previous,
                                       batch=batch)
        audits.append({
            "organization": payment.organization, "action": "payment.recovered", "target": payment,
            "data": {
                "reference": payment.reference, "from": previous, "amount": payment.recovered_amount,
                "currency": payment.currency, "channel": payment.recovered_channel, "attempt": attempt.sequence,
            },
        })
    record_audits(audits)
    if own_batch:
        batch.flush()
    return [payment for payment, _, _ in done]


def paid_twice(*, payment, first: str, second: str, amount: int | None, currency: str) -> bool:
    """Money arrived for a payment already recovered by other money: a possible double payment.

    ``first``: what recovered it (a charge id, or words when it was not a
    charge Tinko knows, e.g. paid outside Tinko); ``second``: the charge id of
    the money that came after. Recorded once per second charge: audited
    ``payment.possible_double_payment`` (timeline, console) and announced as
    :data:`recovery.signals.possible_double_payment` (the merchant's webhook).
    Returns False when that charge was already reported. Moves no money: the
    merchant decides whether to refund.
    """
    action = "payment.possible_double_payment"
    if AuditEvent.objects.filter(
        organization_id=payment.organization_id, action=action, target_type="recovery.payment",
        target_id=str(payment.pk), data__second_charge=second,
    ).exists():
        return False
    record_audit(organization=payment.organization, action=action, target=payment, data={
        "reference": payment.reference, "first_charge": first, "second_charge": second, "amount": amount,
        "currency": currency,
    })
    signals.possible_double_payment.send(
        sender=Payment, payment=payment, first_charge=first, second_charge=second, amount=amount, currency=currency,
    )
    return True


def recovered_by(payment) -> str:
    """What recovered ``payment``, for a double-payment alert: its attempt's charge id, else in words."""
    if payment.recovered_attempt_id:
        result = RecoveryAttempt.objects.filter(pk=payment.recovered_attempt_id).values_list("result", flat=True).first()
        if result and result.get("charge_id"):
            return result["charge_id"]
    return f"recovered {payment.recovered_channel or 'outside Tinko'} at {payment.recovered_at:%Y-%m-%d %H:%M:%S} UTC"


def cancel(*, payment, now, reason: str = "Recovery cancelled.", actor=None, request=None) -> bool:
    """Stop a recovery: ``cancelled``, scheduled and queued attempts cancelled, live links revoked.

    False (nothing changed) if the payment is already cancelled or recovered. The
    caller holds the payment's row lock. An attempt already running keeps
    running: its answer is recorded (a charge that went through still recovers
    the payment). Audited ``payment.cancelled``; announced as
    :data:`recovery.signals.recovery_cancelled`.
    """
    previous = payment.status
    if not Payment.objects.filter(pk=payment.pk, status__in=CANCELLABLE).update(
        status=PaymentStatus.CANCELLED, cancelled_at=now, status_reason=reason, updated_at=now
    ):
        return False
    payment.status, payment.cancelled_at, payment.status_reason, payment.updated_at = (
        PaymentStatus.CANCELLED, now, reason, now
    )
    cancel_attempts(payment_ids=[payment.pk], statuses=(AttemptStatus.SCHEDULED, AttemptStatus.QUEUED),
                    now=now, outcome="Recovery cancelled.")
    revoke_links(payment=payment, now=now)
    signals.recovery_cancelled.send(sender=Payment, payment=payment, previous=previous)
    record_audit(
        organization=payment.organization, action="payment.cancelled", actor=actor, request=request, target=payment,
        data={"reference": payment.reference, "from": previous},
    )
    return True


def exhaust(payments, *, now, reason: str) -> list:
    """Open recoveries (locked by the caller) whose window ended become ``exhausted``; returns those that did.

    Their scheduled attempts are cancelled. Live pay links are left to run to
    their expiry: a customer was told until when each one works, and paying
    through one still recovers the payment. Announced as
    :data:`recovery.signals.recovery_exhausted`.
    """
    ids = [p.pk for p in payments]
    if not ids:
        return []
    cancel_attempts(payment_ids=ids, statuses=(AttemptStatus.SCHEDULED,), now=now, outcome="The recovery window ended.")
    if not Payment.objects.filter(pk__in=ids, status__in=Payment.OPEN).update(
        status=PaymentStatus.EXHAUSTED, status_reason=reason, updated_at=now,
    ):
        return []
    # The caller locked these rows and read them open: the UPDATE changed exactly those still open.
    done = [p for p in payments if p.status in Payment.OPEN]
    for payment in done:
        payment.status, payment.status_reason, payment.updated_at = PaymentStatus.EXHAUSTED, reason, now
    if done:
        signals.recovery_exhausted.send(sender=Payment, payments=done)
    return done


# --- Attempts --------------------------------------------------------------------------------------------

# Re-claimable: due (scheduled), or leased (queued, running) and the lease ran out.
CLAIMABLE = (AttemptStatus.SCHEDULED, AttemptStatus.QUEUED, AttemptStatus.RUNNING)


def queue_attempts(ids, *, now, lease_until) -> int:
    """The scheduler's claim: due attempts (rows it locked with SKIP LOCKED) become ``queued`` under a lease."""
    return RecoveryAttempt.objects.filter(pk__in=ids, status__in=CLAIMABLE).update(
        status=AttemptStatus.QUEUED, queued_at=now, lease_expires_at=lease_until, claims=F("claims") + 1
    )


def start_recharge(attempt_id: int, *, now, lease_until) -> bool:
    """A queued re-charge becomes ``running`` (one conditional UPDATE, no lock); True if this caller won it.

    It races the UPDATE with which a cancellation or a new failure cancels
    queued attempts, and exactly one of them wins.
    """
    return bool(RecoveryAttempt.objects.filter(
        pk=attempt_id, status=AttemptStatus.QUEUED, kind=AttemptKind.AUTO_RETRY
    ).update(
        status=AttemptStatus.RUNNING, started_at=now, lease_expires_at=lease_until,
        # Counted as it starts: a worker that dies in the PSP call has asked the PSP all the same.
        psp_calls=F("psp_calls") + 1,
    ))


def record_recharge(attempt, *, payment, fields: dict, code: str = "") -> bool:
    """Record the PSP's answer for a running re-charge (``fields``: its new status and what goes with it).

    Only the run that holds the attempt's current claim records it; after a lease
    ran out, the newer run does (the PSP gives it the same answer). False when
    superseded. The caller holds the payment's row lock. Announced as
    :data:`recovery.signals.attempt_finished` (also when the answer reschedules it).
    """
    if not RecoveryAttempt.objects.filter(
        pk=attempt.pk, status=AttemptStatus.RUNNING, claims=attempt.claims
    ).update(**fields):
        return False
    metrics.attempt_finished(attempt.kind, fields["status"])
    for name, value in fields.items():
        setattr(attempt, name, value)
    signals.attempt_finished.send(sender=RecoveryAttempt, payment=payment, attempt=attempt, code=code)
    return True


def begin_recharge(attempt, *, now, lease_until) -> bool:
    """:func:`start_recharge` for an attempt the caller has read (a worker's job reads them together).

    True if this caller won it; the attempt then carries the claim number and
    PSP calls as stored, which a re-claim may have moved since it was read.
    """
    if connection.vendor != "postgresql":
        if not start_recharge(attempt.pk, now=now, lease_until=lease_until):
            return False
        row = RecoveryAttempt.objects.filter(pk=attempt.pk).values_list("claims", "psp_calls").get()
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {RecoveryAttempt._meta.db_table} SET status = %s, started_at = %s, lease_expires_at = %s, "
                "psp_calls = psp_calls + 1 WHERE id = %s AND status = %s AND kind = %s RETURNING claims, psp_calls",
                [AttemptStatus.RUNNING, now, lease_until, attempt.pk, AttemptStatus.QUEUED, AttemptKind.AUTO_RETRY],
            )
            row = cursor.fetchone()
        if row is None:
            return False
    attempt.claims, attempt.psp_calls = row
    attempt.status, attempt.started_at, attempt.lease_expires_at = AttemptStatus.RUNNING, now, lease_until
    return True


# What :func:`finish_recharges` writes: a re-charge's answer that ends it (succeeded or declined).
RECHARGE_FIELDS = ("status", "outcome", "result", "finished_at", "lease_expires_at")


def finish_recharges(items, *, batch: signals.Batch | None = None) -> list:
    """:func:`record_recharge` for many running re-charges whose answers end them (a worker's job).

    ``items``: (attempt, payment, fields, code), ``fields`` with exactly
    :data:`RECHARGE_FIELDS`; the caller holds the payments' row locks. One
    conditional ``UPDATE … WHERE status = running AND claims = (as run)`` for
    all: only the run that holds an attempt's current claim records it. Returns
    the items recorded (the others were superseded by a newer claim). Each is
    announced as :data:`recovery.signals.attempt_finished` as
    :func:`record_recharge` does, with ``batch`` (a new one, flushed here, when
    not given: the caller flushes its own).
    """
    rows = [SimpleNamespace(pk=attempt.pk, claims=attempt.claims, **fields) for attempt, _, fields, _ in items]
    won = bulk.update_if(RecoveryAttempt, rows, list(RECHARGE_FIELDS), match=("claims",),
                         where=Q(status=AttemptStatus.RUNNING))
    own_batch = batch is None
    batch = batch or signals.Batch()
    recorded = []
    for item in items:
        attempt, payment, fields, code = item
        if attempt.pk not in won:
            continue
        metrics.attempt_finished(attempt.kind, fields["status"])
        for name, value in fields.items():
            setattr(attempt, name, value)
        signals.attempt_finished.send(sender=RecoveryAttempt, payment=payment, attempt=attempt, code=code, batch=batch)
        recorded.append(item)
    if own_batch:
        batch.flush()
    return recorded


def finish(attempt, status: str, outcome: str, *, now, payment) -> bool:
    """A queued or running attempt ends (``status``: succeeded, skipped, failed or cancelled) with its outcome.

    Saves what the run set on the attempt (its result, the link a message
    carried). The caller holds the payment's row lock.
    """
    if not RecoveryAttempt.objects.filter(
        pk=attempt.pk, status__in=(AttemptStatus.QUEUED, AttemptStatus.RUNNING)
    ).update(status=status, outcome=outcome, finished_at=now, lease_expires_at=None, result=attempt.result,
             link_id=attempt.link_id):
        return False
    metrics.attempt_finished(attempt.kind, status)
    attempt.status, attempt.outcome, attempt.finished_at, attempt.lease_expires_at = status, outcome, now, None
    signals.attempt_finished.send(sender=RecoveryAttempt, payment=payment, attempt=attempt, code="")
    return True


def finish_messages(attempts, *, now) -> None:
    """Many queued message attempts end together (a worker's batch): one ``UPDATE`` for all.

    Each attempt carries its new status and outcome; the caller locked the rows
    and checked each was ``queued`` (this is the bulk form of :func:`finish`).
    """
    for attempt in attempts:
        attempt.finished_at = now
        attempt.lease_expires_at = None
    bulk.update(RecoveryAttempt, attempts, ["status", "outcome", "finished_at", "lease_expires_at", "link"])
    for attempt in attempts:
        metrics.attempt_finished(attempt.kind, attempt.status)
        signals.attempt_finished.send(sender=RecoveryAttempt, payment=attempt.payment, attempt=attempt, code="")


def defer(attempt, *, scheduled_for, outcome: str) -> bool:
    """A queued message waits (quiet hours, the 24-hour cap): ``scheduled`` again for when the rules allow."""
    if not RecoveryAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.QUEUED).update(
        status=AttemptStatus.SCHEDULED, scheduled_for=scheduled_for, lease_expires_at=None, outcome=outcome
    ):
        return False
    metrics.attempt_finished(attempt.kind, AttemptStatus.SCHEDULED)
    attempt.status, attempt.scheduled_for, attempt.lease_expires_at, attempt.outcome = (
        AttemptStatus.SCHEDULED, scheduled_for, None, outcome
    )
    return True


def cancel_attempts(*, payment_ids, now, outcome: str, statuses=(AttemptStatus.SCHEDULED,), exclude=None) -> int:
    """The payments' attempts in ``statuses`` are cancelled (one ``UPDATE``); returns how many."""
    attempts = RecoveryAttempt.objects.filter(payment_id__in=payment_ids, status__in=statuses)
    if exclude is not None:
        attempts = attempts.exclude(pk=exclude)
    return attempts.update(status=AttemptStatus.CANCELLED, finished_at=now, outcome=outcome)


# --- Links -----------------------------------------------------------------------------------------------


def link_channel(link) -> str:
    """The channel that carried ``link`` to the customer (the attempt that sent it), or "link" when none did."""
    channel = (
        RecoveryAttempt.objects.filter(payment_id=link.payment_id, link_id=link.pk).values_list("channel", flat=True).first()
    )
    return channel or "link"


def open_link(link, *, now) -> bool:
    """A customer's visit: a live link is counted as opened (``active → opened``); True if it was.

    A live link past its expiry becomes ``expired`` instead, even before the
    sweep gets to it. One conditional UPDATE in autocommit, no locking SELECT:
    the pay page is the hot path, and a lock would also hold the payment and
    organization rows it joins. Announced as :data:`recovery.signals.link_opened`.
    """
    if link.status not in RecoveryLink.LIVE:
        return False
    if link.expires_at <= now:
        expire_link(link)
        return False
    if not RecoveryLink.objects.filter(pk=link.pk, status__in=RecoveryLink.LIVE).update(
        status=LinkStatus.OPENED, open_count=F("open_count") + 1,
        first_opened_at=Coalesce(F("first_opened_at"), Value(now)), last_opened_at=now,
    ):
        return False
    link.status = LinkStatus.OPENED
    link.open_count += 1
    link.first_opened_at = link.first_opened_at or now
    link.last_opened_at = now
    signals.link_opened.send(sender=RecoveryLink, link=link, at=now)
    return True


def expire_link(link) -> bool:
    """A live link past its expiry becomes ``expired``; True if this call did it."""
    if not RecoveryLink.objects.filter(pk=link.pk, status__in=RecoveryLink.LIVE).update(status=LinkStatus.EXPIRED):
        return False
    link.status = LinkStatus.EXPIRED
    return True


def expire_links(*, now) -> int:
    """Every live link past its expiry becomes ``expired`` (the sweep); returns how many."""
    return RecoveryLink.objects.filter(status__in=RecoveryLink.LIVE, expires_at__lte=now).update(
        status=LinkStatus.EXPIRED
    )


def revoke_links(*, payment, now, keep: RecoveryLink | None = None) -> int:
    """The payment's live links, but ``keep``, stop working (``revoked``); returns how many."""
    links = RecoveryLink.objects.filter(payment=payment, status__in=RecoveryLink.LIVE)
    if keep is not None:
        links = links.exclude(pk=keep.pk)
    return links.update(status=LinkStatus.REVOKED, revoked_at=now)


def complete_link(link, *, now) -> bool:
    """The link that brought the money back is ``completed`` (from any other state: the payment is believed)."""
    if not RecoveryLink.objects.filter(pk=link.pk).exclude(status=LinkStatus.COMPLETED).update(
        status=LinkStatus.COMPLETED, completed_at=now
    ):
        return False
    link.status, link.completed_at = LinkStatus.COMPLETED, now
    return True


# What a recovery cancels of the payment's other attempts: those not started. A re-charge already
# running (its charge may be at the PSP this instant) keeps running, so that its answer is recorded:
# money it took is then accounted for on its attempt and reported as a possible double payment
# (:func:`paid_twice`), never dropped as a cancelled attempt's late answer.
NOT_STARTED = (AttemptStatus.SCHEDULED, AttemptStatus.QUEUED)


def _end_pending(*, payment, now, attempt, link) -> None:
    """Cancel the payment's other attempts not started and revoke its other live links, in one round trip.

    This runs once per recovered payment, ten thousand times in a busy minute
    of automatic retries, so on PostgreSQL the two UPDATEs travel together
    (SQLite has no data-modifying WITH).
    """
    outcome = "The payment was recovered."
    if connection.vendor != "postgresql":
        cancel_attempts(payment_ids=[payment.pk], statuses=NOT_STARTED, now=now, outcome=outcome,
                        exclude=attempt.pk if attempt is not None else None)
        revoke_links(payment=payment, now=now, keep=link)
        return
    attempts = RecoveryAttempt._meta.db_table
    links = RecoveryLink._meta.db_table
    active = ", ".join(["%s"] * len(NOT_STARTED))
    live = ", ".join(["%s"] * len(RecoveryLink.LIVE))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH cancelled AS (UPDATE {attempts} SET status = %s, finished_at = %s, outcome = %s "
            f"WHERE payment_id = %s AND status IN ({active}) AND id <> %s RETURNING 1) "
            f"UPDATE {links} SET status = %s, revoked_at = %s WHERE payment_id = %s AND status IN ({live}) AND id <> %s",
            [
                AttemptStatus.CANCELLED, now, outcome, payment.pk, *NOT_STARTED,
                attempt.pk if attempt is not None else 0,
                LinkStatus.REVOKED, now, payment.pk, *RecoveryLink.LIVE, link.pk if link is not None else 0,
            ],
        )


def _end_pending_many(done, *, now) -> None:
    """:func:`_end_pending` for payments each recovered by an attempt: ``done`` is [(payment, attempt, previous)]."""
    outcome = "The payment was recovered."
    if connection.vendor != "postgresql":
        for payment, attempt, _ in done:
            _end_pending(payment=payment, now=now, attempt=attempt, link=None)
        return
    attempts = RecoveryAttempt._meta.db_table
    links = RecoveryLink._meta.db_table
    active = ", ".join(["%s"] * len(NOT_STARTED))
    live = ", ".join(["%s"] * len(RecoveryLink.LIVE))
    payment_ids = [payment.pk for payment, _, _ in done]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH cancelled AS (UPDATE {attempts} SET status = %s, finished_at = %s, outcome = %s "
            f"WHERE payment_id = ANY(%s) AND status IN ({active}) AND NOT (id = ANY(%s)) RETURNING 1) "
            f"UPDATE {links} SET status = %s, revoked_at = %s WHERE payment_id = ANY(%s) AND status IN ({live})",
            [
                AttemptStatus.CANCELLED, now, outcome, payment_ids, *NOT_STARTED,
                [attempt.pk for _, attempt, _ in done],
                LinkStatus.REVOKED, now, payment_ids, *RecoveryLink.LIVE,
            ],
        )
