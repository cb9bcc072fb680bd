"""Background jobs of the tenancy core (Dramatiq actors; see tinko/background.py).

Actors receive plain data or ids, never model instances.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import dramatiq
from django.conf import settings

from tinko import mail
from tinko.scheduler import periodic


@periodic(every=timedelta(minutes=5))
@dramatiq.actor(queue_name="email", max_retries=0)
def requeue_stuck_emails() -> None:
    """Mail stored but never tried (the broker was down at commit) goes out after all."""
    mail.requeue_stuck_emails()


@periodic(every=timedelta(hours=6))
@dramatiq.actor(queue_name="housekeeping", max_retries=3)
def clear_expired_sessions() -> None:
    """Delete expired sessions; Django never removes them by itself from the database."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()


@periodic(every=timedelta(hours=1))
@dramatiq.actor(queue_name="housekeeping", max_retries=0)
def apply_retention() -> None:
    """Delete or clear what is past its retention (tinko/retention.py: webhook requests, idempotency keys, bodies, …)."""
    from tinko import retention

    retention.apply()
