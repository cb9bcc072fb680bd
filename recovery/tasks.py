"""Background jobs of the recovery engine. Actors receive ids and call plain functions."""

from __future__ import annotations

from datetime import timedelta

import dramatiq

from recovery import runner, services
from tinko.scheduler import periodic


# No Dramatiq retries: a failed run leaves the attempt leased, and the
# scheduler claims it again when the lease runs out (same idempotency key).
@dramatiq.actor(queue_name="recovery", max_retries=0, time_limit=120_000)
def run_attempt(attempt_id: int) -> None:
    """Run one claimed recovery attempt (recovery.runner.run_attempt)."""
    runner.run_attempt(attempt_id)


@periodic(every=timedelta(minutes=1))
@dramatiq.actor(queue_name="housekeeping", max_retries=0)
def sweep_recoveries() -> None:
    """Expire pay links past their expiry; end recoveries whose window has closed."""
    services.expire_links()
    services.exhaust_ended_recoveries()
