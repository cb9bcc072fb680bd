"""Claiming due attempts for the workers (called on every scheduler tick).

The database is the source of truth. A claim moves attempts to ``queued``
with a lease, under ``SELECT … FOR UPDATE SKIP LOCKED`` so that several
schedulers never claim the same row, and enqueues their ids after commit.
An attempt whose lease runs out while still ``queued`` (the broker lost the
message, or Redis was down) or ``running`` (the worker died) is claimed again;
the re-run uses the same idempotency key, so the PSP never charges twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from recovery import transitions
from recovery.models import AttemptStatus, RecoveryAttempt
from tinko import metrics

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
# Attempts per message: one message per attempt costs the scheduler ~0.15 ms of
# CPU each to enqueue (10,000 due attempts: 1.5 s); a few per message keeps
# the workers' threads busy all the same.
ATTEMPTS_PER_MESSAGE = 10


def lease() -> timedelta:
    return timedelta(seconds=settings.TINKO_ATTEMPT_LEASE)


def claim_due_attempts(*, now=None, batch_size: int = BATCH_SIZE, limit: int | None = None) -> int:
    """Claim and enqueue every due attempt (and every expired lease); return how many were claimed."""
    now = now or timezone.now()
    total = 0
    for due in (
        {"status": AttemptStatus.SCHEDULED, "scheduled_for__lte": now},
        {"status__in": [AttemptStatus.QUEUED, AttemptStatus.RUNNING], "lease_expires_at__lte": now},
    ):
        while limit is None or total < limit:
            size = batch_size if limit is None else min(batch_size, limit - total)
            claimed = _claim_batch(due, now=now, size=size)
            total += claimed
            if claimed < size:
                break
    return total


def _claim_batch(due: dict, *, now, size: int) -> int:
    with transaction.atomic():
        ids = list(
            RecoveryAttempt.objects.select_for_update(skip_locked=True)
            .filter(**due)
            .order_by("scheduled_for" if "scheduled_for__lte" in due else "lease_expires_at")
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            return 0
        transitions.queue_attempts(ids, now=now, lease_until=now + lease())
        transaction.on_commit(lambda: enqueue(ids))
    metrics.attempts_claimed(len(ids), reason="due" if "scheduled_for__lte" in due else "lease_expired")
    return len(ids)


def enqueue(ids: list[int]) -> None:
    """Send the attempts to the workers, a few per message. If the broker fails,
    expire the leases of the unsent attempts so the very next tick claims them again."""
    from recovery.tasks import run_attempts

    for position in range(0, len(ids), ATTEMPTS_PER_MESSAGE):
        try:
            run_attempts.send(ids[position:position + ATTEMPTS_PER_MESSAGE])
        except Exception:
            unsent = ids[position:]
            logger.exception("Could not enqueue %d attempts; the next tick retries them", len(unsent))
            try:
                RecoveryAttempt.objects.filter(pk__in=unsent, status=AttemptStatus.QUEUED).update(
                    lease_expires_at=timezone.now()
                )
            except Exception:
                # The lease runs out by itself; nothing is lost, only later.
                logger.exception("Could not expire the leases of unsent attempts")
            return
