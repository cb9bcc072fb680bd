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
    import time

    from django.conf import settings

    from payments import inbox

    # Webhooks stored in the next moment join this run's first batch: until the run deletes the
    # "asked" key they send no message of their own, so a busy inbox costs a few runs a second, not one per webhook.
    # Between batches that were not full the run waits as long again (inbox.process_due), for the same reason.
    gather = settings.TINKO_INBOX_GATHER_MS / 1000
    time.sleep(gather)
    inbox.process_due(seconds=60, gather=gather)
