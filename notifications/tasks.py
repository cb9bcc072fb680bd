"""Background jobs of notifications and merchant webhooks. Actors receive ids and call plain functions."""

from __future__ import annotations

from datetime import timedelta

import dramatiq

from notifications import delivery, webhooks
from tinko.scheduler import periodic


# No Dramatiq retries: a message's next try is on its row (notifications.delivery), found by enqueue_due_notifications.
@dramatiq.actor(queue_name="notifications", max_retries=0,
                time_limit=int(delivery.JOB_TIME_LIMIT.total_seconds() * 1000))
def deliver_notifications(notification_ids: list[int]) -> None:
    """Send the due messages among these over one mail session (notifications.delivery.deliver_many)."""
    delivery.deliver_many(notification_ids)


@periodic(every=timedelta(seconds=30))
@dramatiq.actor(queue_name="webhooks", max_retries=0)
def enqueue_due_webhooks() -> None:
    """Deliveries whose next try has come (retries minutes or hours apart, or a message the broker lost)."""
    webhooks.enqueue_due()


@periodic(every=timedelta(seconds=30))
@dramatiq.actor(queue_name="notifications", max_retries=0)
def enqueue_due_notifications() -> None:
    """Messages whose next try has come, or whose job the broker lost (the rows say when each is due)."""
    delivery.enqueue_due()
