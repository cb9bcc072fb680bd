"""The scheduler: one loop (``manage.py run_scheduler``) that ticks every
TINKO_SCHEDULER_TICK seconds and hands due work to the workers.

The database is the source of truth: a job is due when its PeriodicJob row says
so, and a tick claims it with a conditional UPDATE before enqueueing (after
commit). Several schedulers may run at once; each run is enqueued once. If the
broker is down the claim is put back, so the next tick enqueues the job again;
a failing job never stops the others or the rest of the tick.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
from django.db import transaction
from django.utils import timezone

from tinko.models import PeriodicJob

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    every: timedelta
    actor: dramatiq.Actor


_registry: dict[str, Periodic] = {}


def periodic(*, every: timedelta):
    """Register a Dramatiq actor (taking no arguments) to be enqueued every ``every``."""

    def register(actor: dramatiq.Actor) -> dramatiq.Actor:
        _registry[actor.actor_name] = Periodic(actor.actor_name, every, actor)
        return actor

    return register


def registered() -> list[Periodic]:
    return list(_registry.values())


def run_due_periodic_jobs(*, now=None, jobs: list[Periodic] | None = None) -> list[str]:
    """Enqueue every registered job that is due; return the names enqueued by this call.

    One job's failure (its claim, or its enqueue with the broker down) is logged
    and put back for the next tick; it never stops the other jobs or the tick.
    """
    now = now or timezone.now()
    enqueued = []
    for job in jobs if jobs is not None else registered():
        try:
            if _claim_and_send(job, now):
                enqueued.append(job.name)
        except Exception:
            logger.exception("Periodic job %s could not be claimed; the next tick tries again", job.name)
    if enqueued:
        logger.info("Scheduler enqueued %s", ", ".join(enqueued))
    return enqueued


def _claim_and_send(job: Periodic, now) -> bool:
    # A new job runs at the first tick.
    PeriodicJob.objects.get_or_create(name=job.name, defaults={"next_run_at": now})
    previous = PeriodicJob.objects.filter(name=job.name, next_run_at__lte=now).values_list("next_run_at", flat=True).first()
    if previous is None:
        return False
    with transaction.atomic():
        # Conditional on the value read: of several schedulers, one claims this run.
        claimed = PeriodicJob.objects.filter(name=job.name, next_run_at=previous).update(
            next_run_at=now + job.every, last_run_at=now
        )
        if claimed:
            transaction.on_commit(lambda: _send(job, now, previous))
    return bool(claimed)


def _send(job: Periodic, now, previous) -> None:
    try:
        job.actor.send()
    except Exception:
        logger.exception("Could not enqueue periodic job %s; the next tick tries again", job.name)
        try:
            # Due again at once, unless another scheduler has claimed a later run since.
            PeriodicJob.objects.filter(name=job.name, next_run_at=now + job.every).update(next_run_at=previous)
        except Exception:
            logger.exception("Could not put periodic job %s back; it runs at its next period", job.name)


_tick_hooks: list = []


def on_tick(fn):
    """Register ``fn()`` to run on every tick after the periodic jobs (apps register in ready())."""
    if fn not in _tick_hooks:
        _tick_hooks.append(fn)
    return fn


def tick() -> None:
    """One scheduler tick: everything that runs on the scheduler's clock.

    Each part runs whatever the others did: a failing hook is logged and the
    rest of the tick goes on (claiming recovery attempts must not wait on a
    broken housekeeping job).
    """
    from tinko import metrics

    with metrics.time_tick():
        run_due_periodic_jobs()
        for hook in _tick_hooks:
            try:
                hook()
            except Exception:
                logger.exception("Scheduler tick: %s failed; the next tick tries again", getattr(hook, "__name__", hook))


_last_loop = time.monotonic()


def alive(*, interval: float) -> bool:
    """Liveness: the loop came round recently (a failing tick still counts: readiness covers the database)."""
    return time.monotonic() - _last_loop < 60 + 3 * interval


def run_forever(*, interval: float, stop: threading.Event) -> None:
    """Tick every ``interval`` seconds until ``stop`` is set; a failing tick is logged and retried."""
    global _last_loop
    from django.db import close_old_connections

    while not stop.is_set():
        _last_loop = time.monotonic()
        close_old_connections()
        try:
            tick()
        except Exception:
            # The database may be restarting; the next tick tries again.
            logger.exception("Scheduler tick failed")
        stop.wait(interval)
