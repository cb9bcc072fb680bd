"""Background jobs of notifications and merchant webhooks. Actors receive ids and call plain functions."""

from __future__ import annotations

from datetime import timedelta

import dramatiq

from notifications import services, webhooks
from tinko.scheduler import periodic


@dramatiq.actor(queue_name="notifications", max_retries=5, min_backoff=5_000, max_backoff=600_000)
def deliver_notification(notification_id: int) -> None:
    """Send one stored message (notifications.services.deliver); Dramatiq retries it with backoff on an outage."""
    services.deliver(notification_id)


@dramatiq.actor(queue_name="notifications", max_retries=5, min_backoff=5_000, max_backoff=600_000)
def deliver_notifications(notification_ids: list[int]) -> None:
    """Send several stored messages over one mail session (notifications.services.deliver_many); a retry
    after an outage sends only those still queued."""
    services.deliver_many(notification_ids)


@periodic(every=timedelta(seconds=30))
@dramatiq.actor(queue_name="webhooks", max_retries=0)
def enqueue_due_webhooks() -> None:
    """Deliveries whose next try has come (retries minutes or hours apart, or a message the broker lost)."""
    webhooks.enqueue_due()


@periodic(every=timedelta(minutes=5))
@dramatiq.actor(queue_name="notifications", max_retries=0)
def requeue_stuck_notifications() -> None:
    """Messages stored but never picked up (the broker was down at commit) go out after all."""
    services.requeue_stuck()
