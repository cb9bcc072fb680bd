"""``Idempotency-Key`` for POST endpoints.

The first request with a key stores its response; the same key with the same
method, path and body replays it (``Idempotent-Replayed: true``); the same key
with anything else is a 409. The record is inserted in the same transaction
as the request's own writes, so a concurrent request with the same key waits
on the unique index and then replays: the two never both take effect. Plain
SQL: it runs on every keyed request, and the ORM's savepoint-and-retry costs
as much as the rest of an ingestion. A
request that fails with an exception stores nothing, so it can be retried
with the same key. Ingestion lets this wrapper's transaction be its only one
(``retry_integrity_errors``): when another request created the same payment
first, the whole request, claim included, is rolled back and run again, rather
than the ingestion alone in a savepoint. It also lets the claim run within the view's first lookup
statement (``claim_with_lookup``, tinko.bulk.leading): one round trip fewer per keyed report.
"""

from __future__ import annotations

import functools
import hashlib

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.response import Response

from tinko import bulk
from tinko.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Records are kept TINKO_RETAIN_IDEMPOTENCY_HOURS (tinko/retention.py): clients retry
# within minutes, and a day covers long outages on their side.


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_conflict"
    default_detail = (
        "This Idempotency-Key was already used for a different request. Use a new key for a new request."
    )


def _request_hash(request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(request.path.encode())
    digest.update(b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def idempotent(method=None, *, retry_integrity_errors: bool = False, claim_with_lookup: bool = False):
    """Decorate an APIView's ``post``; the view's writes and the record commit together.

    ``retry_integrity_errors``: with a key, the view's IntegrityError (a concurrent request created the same
    row first) rolls the whole transaction back, claim included, and the request runs again, up to three
    times. For views whose writes would otherwise retry in a savepoint of their own (ingestion, which then
    needs none: two statements fewer per keyed request).

    ``claim_with_lookup``: the claim runs as the leading statement of the view's first
    ``bulk.fetch_together`` (a single report's lookup), in its round trip and before it locks anything; a
    key taken stops the view there (bulk.LeadingRefused) and the request replays. A view that reaches no
    such fetch (an invalid report, SQLite) claims after its work, and a key taken then rolls that back.
    """
    if method is None:
        return functools.partial(idempotent, retry_integrity_errors=retry_integrity_errors,
                                 claim_with_lookup=claim_with_lookup)

    @functools.wraps(method)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return method(view, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise exceptions.ValidationError(
                {HEADER: [f"Must be 1 to {MAX_KEY_LENGTH} printable characters, e.g. a UUID."]}
            )
        request_hash = _request_hash(request)
        organization = request.auth.organization
        tries = 3 if retry_integrity_errors else 1
        run = _run_claiming_with_lookup if claim_with_lookup else _run_once
        for attempt in range(tries):
            try:
                return run(method, view, request, args, kwargs, organization, key, request_hash)
            except IntegrityError:
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    return wrapper


def _run_once(method, view, request, args, kwargs, organization, key, request_hash):
    with transaction.atomic():
        record_id = _claim(organization.pk, key, request_hash)
        if record_id is None:
            # Another request with this key committed first (we waited for it on the index).
            return _replay(organization, key, request_hash)
        response = method(view, request, *args, **kwargs)
        _store(record_id, response)
        return response


class _KeyTaken(Exception):
    pass


def _run_claiming_with_lookup(method, view, request, args, kwargs, organization, key, request_hash):
    lead = None
    try:
        with transaction.atomic():
            with bulk.leading(*_claim_sql(organization.pk, key, request_hash)) as lead:
                response = method(view, request, *args, **kwargs)
            record_id = lead.value if lead.done else _claim(organization.pk, key, request_hash)
            if record_id is None:
                raise _KeyTaken()  # claimed after the view's work: roll it back
            _store(record_id, response)
            return response
    except (bulk.LeadingRefused, _KeyTaken):
        pass
    except Exception as error:
        # The view failed before its lookup claimed the key (an invalid report): as when the claim came first,
        # a key already taken replays (or is a 409) and a free one stays free.
        if lead is None or lead.done or not _key_taken(organization.pk, key, request_hash, error):
            raise
    # Another request with this key committed first (we waited for it on the index); ours is rolled back.
    return _replay(organization, key, request_hash)


def _key_taken(organization_id: int, key: str, request_hash: str, error: Exception) -> bool:
    """Whether the key has a record (waiting for a concurrent request that holds it); claims nothing."""
    try:
        with transaction.atomic():
            taken = _claim(organization_id, key, request_hash) is None
            transaction.set_rollback(True)
    except DatabaseError:
        raise error from None
    return taken


def _replay(organization, key, request_hash):
    record = IdempotencyRecord.objects.get(organization=organization, key=key)
    if record.request_hash != request_hash:
        raise IdempotencyConflict()
    return Response(record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"})


def _claim_sql(organization_id: int, key: str, request_hash: str) -> tuple[str, list]:
    table = connection.ops.quote_name(IdempotencyRecord._meta.db_table)
    return (
        f"INSERT INTO {table} (organization_id, key, request_hash, created_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (organization_id, key) DO NOTHING RETURNING id",
        [organization_id, key, request_hash, timezone.now()],
    )


def _claim(organization_id: int, key: str, request_hash: str) -> int | None:
    """Insert the key's record; None if it exists. A concurrent insert of the same key waits
    for the other transaction, then sees its row (``ON CONFLICT DO NOTHING``, no savepoint)."""
    with connection.cursor() as cursor:
        cursor.execute(*_claim_sql(organization_id, key, request_hash))
        row = cursor.fetchone()
    return row[0] if row else None


def _store(record_id: int, response) -> None:
    field = IdempotencyRecord._meta.get_field("response")
    table = connection.ops.quote_name(IdempotencyRecord._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status_code = %s, response = %s WHERE id = %s",
            [response.status_code, field.get_db_prep_save(response.data, connection), record_id],
        )
