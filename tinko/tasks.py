"""Background jobs of the tenancy core (Dramatiq actors; see tinko/background.py).

Actors receive plain data or ids, never model instances.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import dramatiq
from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from tinko.scheduler import periodic


@dramatiq.actor(queue_name="email", max_retries=5, min_backoff=5_000, max_backoff=300_000)
def send_email(*, subject: str, body: str, to: list[str], html: str | None = None, from_email: str | None = None) -> None:
    """Send one e-mail through the configured backend. Retried with backoff if the backend fails."""
    message = EmailMultiAlternatives(subject=subject, body=body, from_email=from_email, to=to)
    if html:
        message.attach_alternative(html, "text/html")
    message.send()


@periodic(every=timedelta(hours=6))
@dramatiq.actor(queue_name="housekeeping", max_retries=3)
def clear_expired_sessions() -> None:
    """Delete expired sessions; Django never removes them by itself from the database."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
