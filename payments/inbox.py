"""The PSP webhook inbox: verify, store durably, acknowledge; workers process what was stored.

The request (:func:`receive`) does only what the PSP needs an answer for:

- 404: the URL names no active account (only a stub of the request is
  stored: headers, size, SHA-256 and the first TINKO_WEBHOOK_STUB_BYTES);
- 413: the body is larger than TINKO_WEBHOOK_MAX_BODY (a stub is stored);
- 400: missing or wrong signature, a Stripe timestamp older than 300 s, a body
  that is not JSON or not an event (stored as ``rejected``, never processed);
- 200: the verified event is stored, durably (synchronous commit), in one
  INSERT; a second delivery of the same event is absorbed by the unique
  (account, event_id) constraint in that same statement (``ON CONFLICT``);
- 503: the database is down (tinko's middleware): the PSP retries.

The account is found through the cache (invalidated when the account
changes), so a verified event costs one SQL statement. Nothing is processed in
the request: after the INSERT it asks a worker to look at the inbox (at most
one such message waits at a time, see :func:`kick`).

Processing (:func:`process_due`, run by the ``process_webhooks`` actor, and
asked for on every scheduler tick so that a lost message or a dead worker
loses nothing): claim due messages in batches with ``FOR UPDATE SKIP LOCKED``
and a lease, only the oldest unfinished one per ``ordering_key`` (the PSP's
customer, order, …), so events of one object are applied one at a time and in
arrival order; interpret each (may call the PSP, outside any transaction) and
apply it in one transaction that also records the outcome, conditionally on
the claim still being ours, so a message whose worker died is taken again
after its lease and applied once. A failure is recorded (error, try count,
next try) and retried with backoff; after TINKO_INBOX_MAX_TRIES the message is
``failed`` and staff may replay it from admin.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import traceback
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from payments.events import apply_outcome
from payments.models import ProviderAccount, WebhookMessage, WebhookStatus
from payments.providers import WebhookEvent, WebhookRejected, provider_for_account
from tinko import bulk, metrics, textsafety
from tinko.textsafety import storable

logger = logging.getLogger(__name__)

# Never stored: they could carry a session or credentials of whoever sent the request.
_DROPPED_HEADERS = {"cookie", "authorization", "proxy-authorization"}
# A stored request keeps at most this many headers, each value cut to this length.
MAX_HEADERS, MAX_HEADER_LENGTH = 60, 2000
# Milliseconds a worker waits for a row lock (a payment another job is changing) before it tries later.
LOCK_TIMEOUT_MS = 5000
# Seconds a "look at the inbox" message stands for every request after it: while it waits, no other is sent.
KICK_KEY, KICK_SECONDS = "payments:inbox:kick", 5
# Seconds a found account is cached (it is also forgotten as soon as it changes).
ACCOUNT_CACHE_SECONDS = 60
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class _Headers(dict):
    """Header names case-insensitively (as HTTP has them)."""

    def __init__(self, headers):
        super().__init__({k.lower(): v for k, v in headers.items()})

    def get(self, key, default=None):
        return super().get(key.lower(), default)


def stored_headers(request_headers) -> dict:
    kept = [(k, v) for k, v in request_headers.items() if k.lower() not in _DROPPED_HEADERS][:MAX_HEADERS]
    return {storable(str(k))[:200]: storable(str(v))[:MAX_HEADER_LENGTH] for k, v in kept}


def _text(body: bytes) -> str:
    return storable(body.decode("utf-8", errors="replace"))


# --- The account a webhook URL names ------------------------------------------------------------


def _account_key(provider: str, public_id: str) -> str | None:
    return f"payments:inbox:account:{provider}:{public_id}" if _PUBLIC_ID.fullmatch(public_id) else None


def find_account(provider: str, public_id: str) -> ProviderAccount | None:
    """The account of ``/webhooks/<provider>/<public_id>/`` (active or not), through the cache."""
    key = _account_key(provider, public_id)
    account = cache.get(key) if key else None
    if account is None:
        account = ProviderAccount.objects.filter(provider=provider, public_id=public_id[:32]).first()
        if account is not None and key:
            cache.set(key, account, ACCOUNT_CACHE_SECONDS)
    return account


def forget_account(sender=None, instance=None, **kwargs) -> None:
    """Drop ``instance`` from the cache now and after its transaction commits (post_save / post_delete receiver)."""
    key = _account_key(instance.provider, instance.public_id)
    if key:
        cache.delete(key)
        # A request between the save and its commit could have cached the old row again.
        transaction.on_commit(lambda: cache.delete(key))


# --- The request ------------------------------------------------------------------------------------


def receive(*, provider: str, public_id: str, body: bytes, headers, remote_addr: str | None,
            size: int | None = None) -> tuple[int, str]:
    """Verify and store one webhook request; return (HTTP status, short text). Processes nothing.

    ``body`` may be only the start of a body too large to read (``size`` is then its full length).
    """
    size = len(body) if size is None else size
    too_large = size > settings.TINKO_WEBHOOK_MAX_BODY
    stub_bytes = settings.TINKO_WEBHOOK_STUB_BYTES
    stub = (_text(body[:stub_bytes]), size > stub_bytes)
    public_id = storable(public_id)
    message = WebhookMessage(
        provider=provider[:10], account_public_id=public_id[:100], headers=stored_headers(headers),
        body=stub[0] if too_large else _text(body), body_truncated=stub[1] if too_large else False,
        body_size=size, body_sha256=hashlib.sha256(body).hexdigest() if not too_large else "",
        remote_addr=remote_addr or None,
    )
    account = find_account(provider, public_id)
    if account is None or not account.is_active:
        # The whole body is kept only for an active account: a stranger cannot fill the database
        # through an address that leads nowhere.
        message.body, message.body_truncated = stub
        if account is not None:
            message.account_id, message.organization_id = account.pk, account.organization_id
        return _refuse(message, code=404, error="No active account has this webhook URL.")
    message.account_id, message.organization_id = account.pk, account.organization_id
    if too_large:
        limit = settings.TINKO_WEBHOOK_MAX_BODY
        return _refuse(message, code=413, error=f"The body is {size} bytes, more than the {limit} this endpoint accepts.")
    psp = provider_for_account(account)
    try:
        event = psp.parse_webhook(body, _Headers(headers))
    except WebhookRejected as exc:
        return _refuse(message, code=400, error=str(exc))
    message.signature_valid = True
    message.received_event_id = message.event_id = event.id[:255]
    message.event_type = event.type[:100]
    message.ordering_key = (psp.webhook_ordering_key(event) or event.id)[:255]
    message.status, message.response_status = WebhookStatus.RECEIVED, 200
    message.next_try_at = message.received_at
    first = _store(message)
    transaction.on_commit(kick)
    return 200, "Received." if first else "Already received."


def _refuse(message: WebhookMessage, *, code: int, error: str) -> tuple[int, str]:
    """Store a refused request (never processed) and answer ``code``."""
    message.status, message.response_status, message.error = WebhookStatus.REJECTED, code, error
    message.processed_at = timezone.now()
    message.event_id = ""
    _store(message, relaxed=True)
    metrics.inbox_message(provider=message.provider, status=message.status, received_at=message.received_at,
                          processed_at=message.processed_at)
    return code, error


def _store(message: WebhookMessage, *, relaxed: bool = False) -> bool:
    """INSERT ``message`` in one statement; False when it is a second delivery of a stored event.

    ``relaxed``: the commit does not wait for the disk (a refusal: a database
    crash in the next millisecond could lose only the record of a request that
    changed nothing). A verified event is committed synchronously: it is in the
    inbox for good before the PSP hears 200.

    A second delivery of an event counts in ``deliveries``; if processing of the
    stored one was given up (``failed``), the delivery makes it due again (a
    merchant resending the event from the PSP's dashboard means "try again").
    """
    if connection.vendor != "postgresql":
        return _store_portable(message, relaxed=relaxed)
    qn = connection.ops.quote_name
    table = qn(WebhookMessage._meta.db_table)
    fields = [f for f in WebhookMessage._meta.concrete_fields if not f.primary_key]
    params = [f.get_db_prep_save(f.pre_save(message, True), connection) for f in fields]
    columns = ", ".join(qn(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    if relaxed:
        # set_config(..., true) applies to the statement's own transaction (autocommit): no BEGIN/SET/COMMIT round trips.
        statement = f"INSERT INTO {table} ({columns}) SELECT {marks} FROM (SELECT set_config('synchronous_commit', 'off', true)) AS s"
    else:
        failed = f"{table}.status = '{WebhookStatus.FAILED.value}'"
        statement = (
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
            "ON CONFLICT (account_id, event_id) WHERE NOT (event_id = '') DO UPDATE SET "
            f"deliveries = {table}.deliveries + 1, "
            f"status = CASE WHEN {failed} THEN '{WebhookStatus.RETRYING.value}' ELSE {table}.status END, "
            f"tries = CASE WHEN {failed} THEN 0 ELSE {table}.tries END, "
            f"next_try_at = CASE WHEN {failed} THEN EXCLUDED.next_try_at ELSE {table}.next_try_at END"
        )
    with connection.cursor() as cursor:
        cursor.execute(statement + " RETURNING id, (xmax = 0)", params)
        message.pk, inserted = cursor.fetchone()
    message._state.adding, message._state.db = False, connection.alias
    return bool(inserted)


def _store_portable(message: WebhookMessage, *, relaxed: bool) -> bool:
    try:
        with transaction.atomic():
            message.save(force_insert=True)
        return True
    except IntegrityError:
        stored = WebhookMessage.objects.filter(account_id=message.account_id, event_id=message.event_id)
        stored.update(deliveries=F("deliveries") + 1)
        stored.filter(status=WebhookStatus.FAILED).update(
            status=WebhookStatus.RETRYING, tries=0, next_try_at=message.next_try_at)
        message.pk = stored.values_list("pk", flat=True).first()
        return False


def kick() -> None:
    """Ask a worker to process the inbox, unless such a request is waiting already.

    The worker deletes the key before it claims anything, so a message stored
    while the key exists is claimed by the drain that key stands for. Should the
    message be lost, the key expires after KICK_SECONDS and the scheduler's tick
    asks again.
    """
    from payments.tasks import process_webhooks
    from tinko.background import send_safely

    try:
        first = cache.add(KICK_KEY, 1, timeout=KICK_SECONDS)
    except Exception:  # the cache is only a way to send fewer messages
        first = True
    if first and not send_safely(process_webhooks):
        cache.delete(KICK_KEY)


# --- Processing ---------------------------------------------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=settings.TINKO_INBOX_LEASE)


def process_due(*, seconds: float | None = None, batch: int | None = None, gather: float = 0.0) -> int:
    """Claim and process due messages, batch after batch, until none is due or ``seconds`` passed; return how many.

    Returns early with work left only when time ran out (the caller asks for
    another run then), or when another run is already asked for (see below).

    ``gather`` (seconds; the worker's job passes TINKO_INBOX_GATHER_MS): after a
    batch that was not full, the inbox had no more due messages than that, so
    rather than claiming again at once (a few messages per claim: at 100
    webhooks/s a claim every few milliseconds found three or four, and each batch
    costs about 20 statements whatever its size) the run waits ``gather`` and
    lets the next batch fill up. While it waits it holds the "asked" key, as a
    waiting job does, so that the webhooks stored meanwhile send no job of their
    own; it deletes the key before it claims, as always. If the key is already
    there, a webhook stored since this run's claim has asked for a run: that run
    claims after this one's work (its own wait comes first), so this one stops.
    """
    batch = batch or settings.TINKO_INBOX_BATCH
    started, done = time.monotonic(), 0
    cache.delete(KICK_KEY)
    while True:
        count = process_batch(limit=batch)
        done += count
        if count == 0:
            return done
        if seconds is not None and time.monotonic() - started > seconds:
            kick()
            return done
        if gather > 0 and count < batch:
            if not _hold_kick():
                return done
            time.sleep(gather)
            cache.delete(KICK_KEY)


def _hold_kick() -> bool:
    """Take the "asked" key for this run's next claim; False when another run is asked for already."""
    try:
        return bool(cache.add(KICK_KEY, 1, timeout=KICK_SECONDS))
    except Exception:  # the cache is only a way to send fewer messages: claim again, as without it
        return True


def process_batch(*, limit: int) -> int:
    """Claim up to ``limit`` due messages (the oldest unfinished one per ordering key) and process them.

    Each is interpreted first (PSP re-fetches, outside any transaction). Failure
    reports of one account are then recorded together, one ``record_failures``
    and one UPDATE of their messages in one transaction (the API's batch path);
    everything else, and a batch that cannot go through whole, is applied one
    message per transaction. The claim holds one message per ordering key, so
    applying the batch together reorders nothing that must stay in order.
    """
    messages = _claim(limit)
    if not messages:
        return 0
    accounts = ProviderAccount.objects.select_related("organization").in_bulk({m.account_id for m in messages})
    deadline = time.monotonic() + settings.TINKO_INBOX_LEASE / 2
    failures: dict[int, list] = {}
    handled = len(messages)
    with _lock_timeout():
        for index, message in enumerate(messages):
            if time.monotonic() > deadline:
                # Whatever is left goes back before the lease runs out, rather than to a second worker mid-way.
                _release(messages[index:])
                handled = index
                break
            account = accounts.get(message.account_id)
            if account is None:
                _give_up(message, "The message's account no longer exists.")
                continue
            outcome, done = _interpret(message, account)
            if done is not None:
                continue
            if _failures_only(outcome):
                failures.setdefault(account.pk, []).append((message, outcome))
            else:
                _apply(message, account, outcome)
        for account_id, items in failures.items():
            if len(items) > 1 and _apply_failures(accounts[account_id], items):
                continue
            for message, outcome in items:
                _apply(message, accounts[account_id], outcome)
    return handled


def _claim(limit: int) -> list[WebhookMessage]:
    """Mark due messages ``processing`` (one more try, leased) and return them, oldest first."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        return _claim_portable(limit, now)
    # Literal, so that PostgreSQL sees the partial indexes' condition in the query.
    pending = "(" + ", ".join(f"'{s.value}'" for s in WebhookMessage.PENDING) + ")"
    qn = connection.ops.quote_name
    table = qn(WebhookMessage._meta.db_table)
    fields = list(WebhookMessage._meta.concrete_fields)
    columns = ", ".join(f"m.{qn(f.column)}" for f in fields)
    statement = f"""
        WITH due AS (
            SELECT c.id FROM {table} c
            WHERE c.status IN {pending} AND c.next_try_at <= %s
              AND NOT EXISTS (
                  SELECT 1 FROM {table} e
                  WHERE e.account_id = c.account_id AND e.ordering_key = c.ordering_key
                    AND e.status IN {pending} AND e.id < c.id)
            ORDER BY c.id LIMIT %s
            FOR UPDATE OF c SKIP LOCKED)
        UPDATE {table} m SET status = %s, tries = m.tries + 1, next_try_at = %s
        FROM due WHERE m.id = due.id
        RETURNING {columns}"""
    with connection.cursor() as cursor:
        cursor.execute(statement, [now, limit, WebhookStatus.PROCESSING, now + _lease()])
        rows = cursor.fetchall()
    messages = [bulk.from_row(WebhookMessage, fields, row) for row in rows]
    messages.sort(key=lambda m: m.pk)
    return messages


def _claim_portable(limit: int, now) -> list[WebhookMessage]:
    """The claim for SQLite (local mode: one process): the same rule, row by row."""
    blocked, claimed = set(), []
    for message in WebhookMessage.objects.filter(status__in=WebhookMessage.PENDING).order_by("pk"):
        key = (message.account_id, message.ordering_key)
        if key in blocked:
            continue
        blocked.add(key)
        if message.next_try_at is None or message.next_try_at > now:
            continue
        changed = WebhookMessage.objects.filter(pk=message.pk, tries=message.tries, status=message.status).update(
            status=WebhookStatus.PROCESSING, tries=message.tries + 1, next_try_at=now + _lease())
        if changed:
            message.status, message.tries = WebhookStatus.PROCESSING, message.tries + 1
            claimed.append(message)
        if len(claimed) >= limit:
            break
    return claimed


@contextmanager
def _lock_timeout():
    """A bounded wait for row locks on this connection while a batch runs (a lock wait past it retries later)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    timeout = int(getattr(settings, "TINKO_WEBHOOK_LOCK_TIMEOUT_MS", LOCK_TIMEOUT_MS))
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{timeout}ms"])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        except Exception:  # the connection is gone: so is its setting
            pass


def _release(messages: list[WebhookMessage]) -> None:
    """Give claimed, unprocessed messages back (due now; the try does not count)."""
    for message in messages:
        WebhookMessage.objects.filter(pk=message.pk, tries=message.tries, status=WebhookStatus.PROCESSING).update(
            status=WebhookStatus.RETRYING if message.tries > 1 else WebhookStatus.RECEIVED,
            tries=message.tries - 1, next_try_at=timezone.now())


class _Lost(Exception):
    """The claim ran out and another worker took the message: roll back what this one did."""


def _stored_event(message: WebhookMessage) -> WebhookEvent:
    """The event as verified when it arrived (its signature is not checked again: the secret may have changed since)."""
    payload = textsafety.loads(message.body)
    created = payload.get("created") or payload.get("created_at") or 0
    return WebhookEvent(id=message.event_id or message.received_event_id, type=message.event_type, payload=payload,
                        created=created if isinstance(created, int) else 0)


def _process_claimed(message: WebhookMessage, account, *, event: WebhookEvent | None = None) -> tuple[int, str]:
    """Interpret (outside any transaction) and apply one claimed message; record the outcome or the error."""
    if account is None:
        return _give_up(message, "The message's account no longer exists.")
    outcome, done = _interpret(message, account, event=event)
    return done if done is not None else _apply(message, account, outcome)


def _interpret(message: WebhookMessage, account, *, event: WebhookEvent | None = None):
    """``(outcome, None)`` to apply, or ``(None, (code, text))`` when the message is finished (ignored) or failed."""
    psp = provider_for_account(account)
    try:
        event = event or _stored_event(message)
        outcome = psp.interpret_event(event)
    except ValueError as exc:
        # The event is genuine but says nothing Tinko can use: retrying would not help.
        return None, _finish_unless_lost(message, status=WebhookStatus.IGNORED, error=str(exc)[:2000])
    except Exception as exc:
        logger.exception("Webhook message %s: reading %s from the PSP failed", message.pk, message.event_type)
        return None, _retry(message, exc)
    if outcome is None:
        return None, _finish_unless_lost(message, status=WebhookStatus.IGNORED,
                                         result=f"Tinko does not use {event.type} events.")
    return outcome, None


def _apply(message: WebhookMessage, account, outcome) -> tuple[int, str]:
    """Apply one interpreted message in one transaction that also records its outcome (if the claim is still ours)."""
    try:
        with transaction.atomic():
            result = apply_outcome(account=account, outcome=outcome)
            payment_id = outcome.payment_ids[0] if outcome.payment_ids else None
            return _finish(message, status=WebhookStatus.PROCESSED, result=result[:5000], payment_id=payment_id)
    except _Lost:
        logger.warning("Webhook message %s: its claim ran out and another worker took it", message.pk)
        return 200, "Taken by another worker."
    except Exception as exc:
        logger.warning("Webhook message %s: processing %s failed", message.pk, message.event_type, exc_info=True)
        return _retry(message, exc)


def _failures_only(outcome) -> bool:
    """Only failure reports, none that could be a decline of Tinko's own invoice payment (those are checked one by one)."""
    return bool(outcome.failures) and not (
        outcome.successes or outcome.card_updates or outcome.card_changes or outcome.own_attempt or outcome.note
    ) and not any(r.event_id and r.reference.startswith("in_") for r in outcome.failures)


class _Separately(Exception):
    """The batch cannot be applied whole: roll it back and apply its messages one by one."""


def _apply_failures(account, items: list) -> bool:
    """Record the failure reports of several messages of ``account`` at once; False: nothing done, apply them singly.

    The same writes and notes as :func:`payments.events.record_failure` per
    report, but one ``record_failures`` for all. A payment already recovered, a
    success waiting for one of the payments, or a claim another worker took
    sends the whole batch back to the one-by-one path, which handles each case.
    """
    from payments.models import ProviderSuccess
    from recovery.ingestion import record_failures

    pairs = []
    for message, outcome in items:
        for report in outcome.failures:
            report.provider_account_id, report.provider_account = account.pk, account
            pairs.append((message, report))
    try:
        with transaction.atomic():
            results = record_failures(organization=account.organization, reports=[r for _, r in pairs],
                                      source=account.provider, skip_recovered=True)
            waiting = ProviderSuccess.objects.filter(account=account, payment__isnull=True)
            if waiting.exists():
                match = Q()
                for result in results:
                    match |= Q(references__contains=f" {result.payment.reference} ")
                    match |= Q(references__contains=f" {result.payment.provider_payment_id or '-'} ")
                if waiting.filter(match).exists():
                    raise _Separately
            notes: dict[int, list[str]] = {}
            payments: dict[int, int] = {}
            for (message, report), result in zip(pairs, results):
                payment = result.payment
                payments.setdefault(message.pk, payment.pk)
                notes.setdefault(message.pk, []).append(
                    f"Failure {report.event_id} of payment {payment.reference} was already recorded." if result.duplicate
                    else f"Failure of payment {payment.reference} recorded ({result.event.category})."
                )
            _finish_many([m for m, _ in items], notes=notes, payments=payments)
    except Exception as exc:  # whatever it was, the one-by-one path meets it again and records it per message
        logger.info("Webhook messages of account %s applied one by one: %s", account.pk, type(exc).__name__)
        return False
    return True


def _finish_many(messages: list[WebhookMessage], *, notes: dict, payments: dict) -> None:
    """Record several processed messages in one UPDATE; raise _Lost (rolling back) unless every claim is still ours."""
    if connection.vendor != "postgresql":
        for message in messages:
            _finish(message, status=WebhookStatus.PROCESSED, result=" ".join(notes[message.pk])[:5000],
                    payment_id=payments.get(message.pk))
        return
    now = timezone.now()
    qn = connection.ops.quote_name
    table = qn(WebhookMessage._meta.db_table)
    rows, params = [], []
    for message in messages:
        rows.append("(%s::bigint, %s::integer, %s::text, %s::bigint)")
        params += [message.pk, message.tries, " ".join(notes[message.pk])[:5000], payments.get(message.pk)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} t SET status = %s, result = v.result, error = '', processed_at = %s, next_try_at = NULL, "
            f"payment_id = COALESCE(v.payment_id, t.payment_id) FROM (VALUES {', '.join(rows)}) AS v(id, tries, result, payment_id) "
            f"WHERE t.id = v.id AND t.tries = v.tries AND t.status = %s",
            [WebhookStatus.PROCESSED, now, *params, WebhookStatus.PROCESSING],
        )
        if cursor.rowcount != len(messages):
            raise _Lost
    for message in messages:
        message.status, message.processed_at, message.next_try_at = WebhookStatus.PROCESSED, now, None
        message.result, message.error = " ".join(notes[message.pk])[:5000], ""
        metrics.inbox_message(provider=message.provider, status=WebhookStatus.PROCESSED, received_at=message.received_at,
                              processed_at=now)


def _finish(message: WebhookMessage, *, status: str, result: str = "", error: str = "",
            payment_id: int | None = None) -> tuple[int, str]:
    """Record the outcome, if the claim is still ours (else raise _Lost: the caller's transaction rolls back)."""
    now = timezone.now()
    fields = {"status": status, "result": result, "error": error, "processed_at": now, "next_try_at": None}
    if payment_id is not None:
        fields["payment_id"] = payment_id
    changed = WebhookMessage.objects.filter(pk=message.pk, tries=message.tries, status=WebhookStatus.PROCESSING).update(**fields)
    if not changed:
        raise _Lost
    for name, value in fields.items():
        setattr(message, name, value)
    metrics.inbox_message(provider=message.provider, status=status, received_at=message.received_at, processed_at=now)
    return 200, error or result


def _finish_unless_lost(message: WebhookMessage, **outcome) -> tuple[int, str]:
    try:
        return _finish(message, **outcome)
    except _Lost:
        return 200, "Taken by another worker."


def _retry(message: WebhookMessage, exc: Exception) -> tuple[int, str]:
    """Record the error; the message is due again after a backoff, or ``failed`` after the last try."""
    if message.tries >= settings.TINKO_INBOX_MAX_TRIES:
        return _give_up(message, _describe(exc))
    wait = min(settings.TINKO_INBOX_RETRY_BASE * 2 ** (message.tries - 1), 3600)
    now = timezone.now()
    fields = {"status": WebhookStatus.RETRYING, "error": _describe(exc), "next_try_at": now + timedelta(seconds=wait)}
    WebhookMessage.objects.filter(pk=message.pk, tries=message.tries, status=WebhookStatus.PROCESSING).update(**fields)
    for name, value in fields.items():
        setattr(message, name, value)
    metrics.inbox_message(provider=message.provider, status=WebhookStatus.RETRYING, received_at=message.received_at,
                          processed_at=None)
    return 500, message.error


def _give_up(message: WebhookMessage, error: str) -> tuple[int, str]:
    now = timezone.now()
    fields = {"status": WebhookStatus.FAILED, "error": error, "processed_at": now, "next_try_at": None}
    WebhookMessage.objects.filter(pk=message.pk, tries=message.tries, status=WebhookStatus.PROCESSING).update(**fields)
    for name, value in fields.items():
        setattr(message, name, value)
    metrics.inbox_message(provider=message.provider, status=WebhookStatus.FAILED, received_at=message.received_at,
                          processed_at=now)
    return 500, error


def sweep() -> None:
    """Scheduler tick: ask a worker to look at the inbox if anything is due (a lost message, an expired lease, a retry)."""
    from payments.tasks import process_webhooks
    from tinko.background import send_safely

    if WebhookMessage.objects.filter(status__in=WebhookMessage.PENDING, next_try_at__lte=timezone.now()).exists():
        send_safely(process_webhooks)


def replay(message: WebhookMessage) -> tuple[int, str]:
    """Process a stored, verified message again, now (staff, from admin). Safe: applying an event twice changes nothing.

    The signature is checked again (not its age: the message was on time when it arrived).
    """
    account = message.account
    if account is None or not message.signature_valid:
        raise ValueError("Only messages whose signature was verified can be replayed.")
    if message.body_truncated:
        raise ValueError("Only part of this message's body was kept; it cannot be replayed.")
    if message.status == WebhookStatus.DUPLICATE:
        raise ValueError("This message is a duplicate; replay the message that processed the event instead.")
    psp = provider_for_account(account)
    try:
        event = psp.parse_webhook(message.body.encode("utf-8"), _Headers(message.headers), tolerance=None)
    except WebhookRejected as exc:
        raise ValueError(f"The stored message no longer verifies: {exc}") from None
    now = timezone.now()
    claimed = WebhookMessage.objects.filter(pk=message.pk, tries=message.tries).exclude(
        status=WebhookStatus.PROCESSING, next_try_at__gt=now,
    ).update(status=WebhookStatus.PROCESSING, tries=F("tries") + 1, replays=F("replays") + 1, next_try_at=now + _lease())
    if not claimed:
        raise ValueError("A worker is processing this message right now; look again in a moment.")
    message.refresh_from_db()
    return _process_claimed(message, account, event=event)


def _describe(exc: Exception) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
