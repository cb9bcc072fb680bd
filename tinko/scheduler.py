"""The scheduler: one loop (``manage.py run_scheduler``) that ticks every
TINKO_SCHEDULER_TICK seconds and hands due work to the workers.

The database is the source of truth: a job is due when its PeriodicJob row says
so, and a tick claims it with a conditional UPDATE before enqueueing (after
commit). Several schedulers may run at once; each run is enqueued once. If the
broker is down the claim is lost for that run only: periodic jobs here are
housekeeping that the next period repeats.
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
    """Enqueue every registered job that is due; return the names enqueued by this call."""
    now = now or timezone.now()
    enqueued = []
    for job in jobs if jobs is not None else registered():
        # A new job runs at the first tick.
        PeriodicJob.objects.get_or_create(name=job.name, defaults={"next_run_at": now})
        with transaction.atomic():
            claimed = PeriodicJob.objects.filter(name=job.name, next_run_at__lte=now).update(
                next_run_at=now + job.every, last_run_at=now
            )
            if claimed:
                transaction.on_commit(job.actor.send)
                enqueued.append(job.name)
    if enqueued:
        logger.info("Scheduler enqueued %s", ", ".join(enqueued))
    return enqueued


_tick_hooks: list = []


def on_tick(fn):
    """Register ``fn()`` to run on every tick after the periodic jobs (apps register in ready())."""
    if fn not in _tick_hooks:
        _tick_hooks.append(fn)
    return fn


def tick() -> None:
    """One scheduler tick: everything that runs on the scheduler's clock."""
    from tinko import metrics

    with metrics.time_tick():
        run_due_periodic_jobs()
        for hook in _tick_hooks:
            hook()


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
