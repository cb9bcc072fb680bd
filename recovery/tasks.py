"""Background jobs of the recovery engine. Actors receive ids and call plain functions."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from django.utils import timezone

from recovery import ports, runner, services, transitions
from tinko.scheduler import periodic


logger = logging.getLogger(__name__)


# No Dramatiq retries: an attempt whose run failed stays leased, and the
# scheduler claims it again when the lease runs out (same idempotency key).
@dramatiq.actor(queue_name="recovery", max_retries=0, time_limit=600_000)
def run_attempts(attempt_ids: list[int]) -> None:
    """Run claimed recovery attempts (recovery.runner.run_job: what recovery.runner.run_attempt does for each).

    One attempt's failure does not stop the others.
    """
    # The messages these attempts store leave together, in one delivery job, after the last attempt.
    with ports.messenger().delivery_batch():
        # Messages are recorded together (one transaction), re-charges charged one by one and recorded together,
        # the rest run one by one inside.
        runner.run_job(attempt_ids)


@periodic(every=timedelta(minutes=1))
@dramatiq.actor(queue_name="housekeeping", max_retries=0)
def sweep_recoveries() -> None:
    """Expire pay links past their expiry; end recoveries whose window has closed."""
    transitions.expire_links(now=timezone.now())
    services.exhaust_ended_recoveries()


@dramatiq.actor(queue_name="housekeeping", max_retries=0, time_limit=600_000)
def simulate_policies(organization_id: int, run_id: str) -> None:
    """Run a console "Compare policies" request (recovery.simulator.service.execute_run); moves no money."""
    from recovery.simulator.service import execute_run

    execute_run(organization_id, run_id)
