"""The PSP webhook inbox: store the raw request first, verify, dedupe, process in a transaction.

Answers (the PSP retries anything but 2xx):

- 404: the URL names no active account (only a stub of the request is
  stored: headers, size, SHA-256 and the first TINKO_WEBHOOK_STUB_BYTES);
- 413: the body is larger than TINKO_WEBHOOK_MAX_BODY (a stub is stored);
- 400: missing or wrong signature, a Stripe timestamp older than 300 s, a body
  that is not JSON or not an event;
- 200: processed; a duplicate of a processed event; an event type Tinko does
  not use; an event that concerns no payment Tinko knows;
- 503: a row lock could not be had in time, or the database is down: try again;
- 500: processing failed: the error is stored (never sent back) and the PSP retries.

Duplicates are absorbed by the unique (account, event_id) constraint: the
delivery that processes an event claims the id inside its processing
transaction, so ten concurrent deliveries process it once, and a delivery
whose processing failed leaves the id free for the next try.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from contextlib import contextmanager

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from payments.events import apply_outcome
from payments.models import ProviderAccount, WebhookMessage, WebhookStatus
from tinko import bulk, metrics
from tinko.models import Organization
from payments.providers import WebhookEvent, WebhookRejected, provider_for_account
from tinko.textsafety import storable

logger = logging.getLogger(__name__)

# Never stored: they could carry a session or credentials of whoever sent the request.
_DROPPED_HEADERS = {"cookie", "authorization", "proxy-authorization"}
# A stored request keeps at most this many headers, each value cut to this length.
MAX_HEADERS, MAX_HEADER_LENGTH = 60, 2000
PROCESSING_FAILED = "Processing failed; the error is recorded. Deliver the event again later."
# Milliseconds a webhook waits for a row lock (a payment another request is changing) before 503.
LOCK_TIMEOUT_MS = 5000


class _Headers(dict):
    """Header names case-insensitively (as HTTP has them)."""

    def __init__(self, headers):
        super().__init__({k.lower(): v for k, v in headers.items()})

    def get(self, key, default=None):
        return super().get(key.lower(), default)


def stored_headers(request_headers) -> dict:
    kept = [(k, v) for k, v in request_headers.items() if k.lower() not in _DROPPED_HEADERS][:MAX_HEADERS]
    return {storable(str(k))[:200]: storable(str(v))[:MAX_HEADER_LENGTH] for k, v in kept}


@contextmanager
def _relaxed_commit():
    """A transaction whose commit does not wait for the disk.

    For rows that record what arrived (the raw request, a refusal, an ignored
    event): they are in the write-ahead log at once, and the processing
    transaction that follows commits synchronously, which flushes them too
    before any 2xx that ends a recovery goes out. A database crash in the
    millisecond between can lose only such a record, never a payment change.
    Halves the disk flushes per webhook, which is most of its latency.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        yield


def _finish(message: WebhookMessage, *, status: str, code: int, result: str = "", error: str = "") -> tuple[int, str]:
    if not connection.in_atomic_block:
        with _relaxed_commit():
            return _finish(message, status=status, code=code, result=result, error=error)
    message.status = status
    message.response_status = code
    message.result = result
    message.error = error
    message.processed_at = timezone.now()
    metrics.inbox_message(provider=message.provider, status=status, received_at=message.received_at,
                          processed_at=message.processed_at)
    message.save(update_fields=[
        "status", "response_status", "result", "error", "processed_at", "signature_valid", "received_event_id",
        "event_type", "event_id", "payment",
    ])
    return code, error or result


def _columns(model) -> list:
    return list(model._meta.concrete_fields)


def _find_account_and_store(*, provider: str, public_id: str, message: WebhookMessage, stub: tuple[str, bool]):
    """Find the account the URL names (with its organization) and store the raw request.

    The whole body is stored only for an active account; for any other the
    body is ``stub`` (its first bytes, and whether that cut it), so a stranger
    cannot fill the database through an address that leads nowhere.

    On PostgreSQL one statement, in autocommit, which also returns the
    account's and organization's columns: the lookup costs no round trip of
    its own, and ``set_config(…, true)`` turns synchronous commit off for the
    statement's own transaction (see :func:`_relaxed_commit`) without the
    BEGIN, SET and COMMIT round trips of an explicit one. Inside a caller's
    transaction it applies to that transaction, as SET LOCAL would.
    """
    if connection.vendor != "postgresql":
        account = (
            ProviderAccount.objects.select_related("organization")
            .filter(provider=provider, public_id=public_id[:32])
            .first()
        )
        message.account = account
        message.organization_id = account.organization_id if account else None
        if account is None or not account.is_active:
            message.body, message.body_truncated = stub
        with _relaxed_commit():
            message.save(force_insert=True)
        return account, message
    qn = connection.ops.quote_name
    account_fields, org_fields = _columns(ProviderAccount), _columns(Organization)
    found = ", ".join(
        [f"a.{qn(f.column)} AS a{i}" for i, f in enumerate(account_fields)]
        + [f"o.{qn(f.column)} AS o{i}" for i, f in enumerate(org_fields)]
    )
    account_pk = f"a{[f.primary_key for f in account_fields].index(True)}"
    account_org = f"a{[f.attname for f in account_fields].index('organization_id')}"
    account_active = f"a{[f.attname for f in account_fields].index('is_active')}"
    matched = f"(found.{account_active} IS TRUE)"
    fields = [f for f in WebhookMessage._meta.concrete_fields if not f.primary_key]
    values, params = [], []
    for f in fields:
        if f.attname == "account_id":
            values.append(f"found.{account_pk}")
        elif f.attname == "organization_id":
            values.append(f"found.{account_org}")
        elif f.attname in ("body", "body_truncated"):
            values.append(f"CASE WHEN {matched} THEN %s ELSE %s END")
            params.append(f.get_db_prep_save(f.pre_save(message, True), connection))
            params.append(stub[0] if f.attname == "body" else stub[1])
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(f.pre_save(message, True), connection))
    statement = (
        f"WITH found AS (SELECT {found} FROM {qn(ProviderAccount._meta.db_table)} a "
        f"JOIN {qn(Organization._meta.db_table)} o ON o.{qn(Organization._meta.pk.column)} = a.{qn('organization_id')} "
        f"WHERE a.{qn('provider')} = %s AND a.{qn('public_id')} = %s LIMIT 1), "
        f"stored AS (INSERT INTO {qn(WebhookMessage._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
        f"SELECT {', '.join(values)} FROM (SELECT set_config('synchronous_commit', 'off', true)) AS s "
        f"LEFT JOIN found ON true RETURNING {qn(WebhookMessage._meta.pk.column)}) "
        f"SELECT stored.*, found.* FROM stored LEFT JOIN found ON true"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [provider, public_id[:32], *params])
        row = cursor.fetchone()
    message.pk = row[0]
    message._state.adding = False
    message._state.db = connection.alias
    account = None
    if row[1 + int(account_pk[1:])] is not None:
        account = bulk.from_row(ProviderAccount, account_fields, row[1:1 + len(account_fields)])
        account.organization = bulk.from_row(Organization, org_fields, row[1 + len(account_fields):])
        message.account = account
        message.organization_id = account.organization_id
    if account is None or not account.is_active:
        message.body, message.body_truncated = stub
    return account, message


def _text(body: bytes) -> str:
    return storable(body.decode("utf-8", errors="replace"))


def receive(*, provider: str, public_id: str, body: bytes, headers, remote_addr: str | None,
            size: int | None = None) -> tuple[int, str]:
    """Store, verify and process one webhook request; return (HTTP status, short text).

    ``body`` may be only the start of a body too large to read (``size`` is then its full length).
    """
    size = len(body) if size is None else size
    too_large = size > settings.TINKO_WEBHOOK_MAX_BODY
    stub_bytes = settings.TINKO_WEBHOOK_STUB_BYTES
    stub = (_text(body[:stub_bytes]), size > stub_bytes)
    public_id = storable(public_id)
    account, message = _find_account_and_store(provider=provider, public_id=public_id, stub=stub, message=WebhookMessage(
        provider=provider[:10], account_public_id=public_id[:100], headers=stored_headers(headers),
        body=stub[0] if too_large else _text(body), body_truncated=stub[1] if too_large else False,
        body_size=size, body_sha256=hashlib.sha256(body).hexdigest() if not too_large else "",
        remote_addr=remote_addr or None,
    ))
    if account is None or not account.is_active:
        return _finish(message, status=WebhookStatus.REJECTED, code=404, error="No active account has this webhook URL.")
    if too_large:
        limit = settings.TINKO_WEBHOOK_MAX_BODY
        return _finish(message, status=WebhookStatus.REJECTED, code=413,
                       error=f"The body is {size} bytes, more than the {limit} this endpoint accepts.")
    psp = provider_for_account(account)
    try:
        event = psp.parse_webhook(body, _Headers(headers))
    except WebhookRejected as exc:
        return _finish(message, status=WebhookStatus.REJECTED, code=400, error=str(exc))
    message.signature_valid = True
    message.received_event_id = event.id[:255]
    message.event_type = event.type[:100]
    return process(message, account=account, psp=psp, event=event)


def process(message: WebhookMessage, *, account, psp, event: WebhookEvent) -> tuple[int, str]:
    """Interpret (may call the PSP, outside any transaction), then claim the event id and apply, in one transaction."""
    try:
        outcome = psp.interpret_event(event)
    except ValueError as exc:
        # The event is genuine but says nothing Tinko can use: retrying would not help.
        return _finish(message, status=WebhookStatus.IGNORED, code=200, error=str(exc)[:2000])
    except Exception as exc:
        logger.exception("Webhook message %s: reading %s from the PSP failed", message.pk, event.type)
        _finish(message, status=WebhookStatus.FAILED, code=500, error=_describe(exc))
        return 500, PROCESSING_FAILED
    if outcome is None:
        return _finish(message, status=WebhookStatus.IGNORED, code=200, result=f"Tinko does not use {event.type} events.")
    duplicate = False
    try:
        with transaction.atomic():
            try:
                # The claim is the transaction's first statement: a duplicate
                # rolls back nothing but the claim, so no savepoint is needed.
                _claim(message, event.id[:255])
            except IntegrityError:
                duplicate = True
                raise _Duplicate from None
            result = apply_outcome(account=account, outcome=outcome)
            message.event_id = event.id[:255]
            message.payment_id = outcome.payment_ids[0] if outcome.payment_ids else message.payment_id
            _finish(message, status=WebhookStatus.PROCESSED, code=200, result=result[:5000])
    except _Duplicate:
        pass
    except OperationalError as exc:
        logger.warning("Webhook message %s: database busy (%s); the PSP will retry", message.pk, type(exc).__name__)
        message.event_id = ""
        return _finish(message, status=WebhookStatus.FAILED, code=503, error="The database was busy; the PSP will retry.")
    except Exception as exc:
        logger.exception("Webhook message %s: processing %s failed", message.pk, event.type)
        message.event_id = ""
        _finish(message, status=WebhookStatus.FAILED, code=500, error=_describe(exc))
        return 500, PROCESSING_FAILED
    if duplicate:
        first = WebhookMessage.objects.filter(account=account, event_id=event.id[:255]).values_list("pk", flat=True).first()
        return _finish(message, status=WebhookStatus.DUPLICATE, code=200, result=f"Already processed (message {first}).")
    return 200, message.result


class _Duplicate(Exception):
    """Another delivery holds the event id: roll the processing transaction back."""


def _claim(message: WebhookMessage, event_id: str) -> None:
    """Set ``event_id`` (unique per account) and the transaction's lock timeout, in one statement on PostgreSQL.

    A delivery of the same event that is still processing makes this wait (at
    most the lock timeout) and then fail on the constraint if it committed.
    """
    if connection.vendor != "postgresql":
        WebhookMessage.objects.filter(pk=message.pk).update(event_id=event_id)
        return
    timeout = int(getattr(settings, "TINKO_WEBHOOK_LOCK_TIMEOUT_MS", LOCK_TIMEOUT_MS))
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(WebhookMessage._meta.db_table)} SET event_id = %s "
            "FROM (SELECT set_config('lock_timeout', %s, true)) AS s WHERE id = %s",
            [event_id, f"{timeout}ms", message.pk],
        )


def replay(message: WebhookMessage) -> tuple[int, str]:
    """Process a stored, verified message again (staff, from admin). Safe: applying an event twice changes nothing.

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
    WebhookMessage.objects.filter(pk=message.pk).update(replays=message.replays + 1)
    message.replays += 1
    return process(message, account=account, psp=psp, event=event)


def _describe(exc: Exception) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
