"""``Idempotency-Key`` for POST endpoints.

The first request with a key stores its response; the same key with the same
method, path and body replays it (``Idempotent-Replayed: true``); the same key
with anything else is a 409. The record is inserted in the same transaction
as the request's own writes, so a concurrent request with the same key waits
on the unique index and then replays: the two never both take effect. A
request that fails with an exception stores nothing, so it can be retried
with the same key.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.response import Response

from tinko.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Clients retry within minutes; a day covers long outages on their side.
RETENTION = timedelta(hours=24)


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


def idempotent(method):
    """Decorate an APIView's ``post``; the view's writes and the record commit together."""

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
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(organization=organization, key=key, request_hash=request_hash)
            except IntegrityError:
                # Another request with this key committed first (we waited for it on the index).
                record = IdempotencyRecord.objects.get(organization=organization, key=key)
                if record.request_hash != request_hash:
                    raise IdempotencyConflict() from None
                return Response(record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"})
            response = method(view, request, *args, **kwargs)
            record.status_code = response.status_code
            record.response = response.data
            record.save(update_fields=["status_code", "response"])
            return response

    return wrapper


def delete_expired(*, now=None) -> int:
    now = now or timezone.now()
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=now - RETENTION).delete()
    return deleted
