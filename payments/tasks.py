"""Background jobs of the payments app."""

from __future__ import annotations

from datetime import timedelta

import dramatiq

from payments import reconciliation
from tinko.scheduler import periodic


@periodic(every=timedelta(minutes=15))
@dramatiq.actor(queue_name="housekeeping", max_retries=0, time_limit=900_000)
def reconcile_payments() -> None:
    """Ask connected PSPs about payments under recovery that may have been paid outside Tinko."""
    reconciliation.reconcile()


@dramatiq.actor(queue_name="inbox", max_retries=0, time_limit=300_000)
def process_webhooks() -> None:
    """Process the PSP webhooks waiting in the inbox (sent after each stored webhook, at most one waiting at a time)."""
    from payments import inbox

    inbox.process_due(seconds=60)
