"""Short leases on running re-charges, renewed while the worker lives.

A re-charge marked ``running`` holds a lease of TINKO_ATTEMPT_RUN_LEASE
seconds (12 by default). While the run lasts, a heartbeat thread in the worker
process renews the lease of every attempt this process is running, every third
of the lease. A worker that dies (``kill -9``, an out-of-memory kill, a lost
host) stops renewing; its attempts' leases run out and the scheduler claims
them again at its next tick, within the lease plus one tick (under 30 s with
the defaults) instead of a long fixed lease.

A renewal is conditional on the attempt still being ``running`` under the
same claim: once the scheduler has claimed it again, this process no longer
extends it, and :func:`recovery.runner.finish_attempt` discards its answer
("superseded"). The re-run sends the same idempotency key, so the PSP never
charges twice. If the database itself is unreachable the heartbeat retries
every second; the scheduler cannot claim anything meanwhile either.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

_held: dict[int, int] = {}  # attempt id → its claim number
_lock = threading.Lock()
_thread: tuple[threading.Thread, int] | None = None
_wake = threading.Event()


def run_lease() -> timedelta:
    return timedelta(seconds=settings.TINKO_ATTEMPT_RUN_LEASE)


@contextmanager
def held(attempt_id: int, claims: int):
    """Keep renewing the lease of ``attempt_id`` (under claim ``claims``) until the block ends."""
    _ensure_heartbeat()
    with _lock:
        _held[attempt_id] = claims
    try:
        yield
    finally:
        with _lock:
            _held.pop(attempt_id, None)


class Holding:
    """The attempts a job holds, joining one by one as each starts (see :func:`holding`)."""

    def __init__(self):
        self.ids: list[int] = []

    def add(self, attempt_id: int, claims: int) -> None:
        with _lock:
            _held[attempt_id] = claims
        self.ids.append(attempt_id)

    def release(self, attempt_ids) -> None:
        with _lock:
            for attempt_id in attempt_ids:
                _held.pop(attempt_id, None)


@contextmanager
def holding():
    """:func:`held` for a job's re-charges: ``add`` each as it starts; all are released when the block ends."""
    _ensure_heartbeat()
    holder = Holding()
    try:
        yield holder
    finally:
        holder.release(holder.ids)


def renew(now=None) -> int:
    """Extend the leases of the attempts this process holds; return how many were still ours."""
    from django.db.models import Q

    from recovery.models import AttemptStatus, RecoveryAttempt

    with _lock:
        held_now = dict(_held)
    if not held_now:
        return 0
    now = now or timezone.now()
    if connection.vendor != "postgresql":
        mine = Q()
        for attempt_id, claims in held_now.items():
            mine |= Q(pk=attempt_id, claims=claims)
        return RecoveryAttempt.objects.filter(mine, status=AttemptStatus.RUNNING).update(lease_expires_at=now + run_lease())
    # Rows another transaction has locked are skipped, not waited for: that transaction is recording, re-claiming
    # or cancelling them (a job records its re-charges together, and waiting on its rows in another order could
    # deadlock with it). If it rolls back, the next beat renews them, well within the lease.
    table = RecoveryAttempt._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET lease_expires_at = %s FROM unnest(%s::bigint[], %s::integer[]) AS h(id, claims) "
            f"WHERE t.id = h.id AND t.claims = h.claims AND t.id IN ("
            f"SELECT id FROM {table} WHERE id = ANY(%s) AND status = %s FOR UPDATE SKIP LOCKED)",
            [now + run_lease(), list(held_now), list(held_now.values()), list(held_now), AttemptStatus.RUNNING],
        )
        return cursor.rowcount


def _beat() -> None:
    interval = max(1.0, settings.TINKO_ATTEMPT_RUN_LEASE / 3)
    while True:
        _wake.wait(interval)
        _wake.clear()
        try:
            close_old_connections()
            renew()
        except Exception:
            logger.warning("Could not renew running attempts' leases; retrying in 1 s", exc_info=True)
            try:
                connection.close()
            except Exception:
                pass
            _wake.wait(1)


def _ensure_heartbeat() -> None:
    """Start this process's heartbeat thread once (again in a forked child)."""
    global _thread
    with _lock:
        if _thread is not None and _thread[1] == os.getpid() and _thread[0].is_alive():
            return
        thread = threading.Thread(target=_beat, name="tinko-lease-heartbeat", daemon=True)
        thread.start()
        _thread = (thread, os.getpid())
