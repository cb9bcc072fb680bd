"""E-mail to users, sent by a worker: stored first, delivered once, never lost to a broker hiccup.

``queue_email`` writes an OutboundEmail in the caller's transaction and
enqueues its id after commit. ``deliver`` (the actor's body) locks the row,
sends it once and records the outcome. The scheduler re-enqueues mail that was
stored but never attempted (Redis down at commit) or whose retries stopped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from tinko import crypto
from tinko.background import send_safely
from tinko.models import OutboundEmail

logger = logging.getLogger(__name__)

# After this many failed attempts the mail is marked failed (the actor's own
# retries and the scheduler's re-enqueues both count).
MAX_ATTEMPTS = 8
# Stored mail not attempted for this long is assumed lost by the broker.
STUCK_AFTER = timedelta(minutes=10)


def inline_css(html: str) -> str:
    """Move a layout's <style> rules onto the elements: many mail clients drop <style>."""
    import css_inline

    return css_inline.inline(html)


def site_context() -> dict:
    """What every e-mail to users says about where Tinko lives: ``site_url`` and its host name."""
    from urllib.parse import urlsplit

    from django.conf import settings

    return {"site_url": settings.SITE_URL, "site_host": urlsplit(settings.SITE_URL).netloc}


class DeliveryFailed(Exception):
    """Raised by the actor so that Dramatiq retries with backoff; the row holds the error."""


def queue_email(*, subject: str, body: str, to: list[str], html: str | None = None) -> OutboundEmail:
    """Store an e-mail and have a worker send it once the current transaction commits.

    The request does not wait on the mail server; a rolled back transaction
    stores and sends nothing.
    """
    # Header values must be one line: a name with a line break (org names are
    # user input) would otherwise fail at send time, or worse, add headers.
    subject = " ".join(subject.split())[:255]
    email = OutboundEmail.objects.create(
        to=list(to),
        subject=subject,
        body_encrypted=crypto.encrypt(body),
        html_encrypted=crypto.encrypt(html) if html else "",
    )
    # Sent by requeue_stuck_emails if the broker is down now.
    transaction.on_commit(lambda: send_safely(send_email, email.pk))
    return email


def deliver(email_id: int) -> OutboundEmail | None:
    """Send a stored e-mail unless it was already sent or given up; record the outcome.

    Holds the row lock while talking to the mail server, so two workers given
    the same id (a retry racing a re-enqueue) never send it twice.
    Raises DeliveryFailed when the attempt failed and another should follow.
    """
    with transaction.atomic():
        email = OutboundEmail.objects.select_for_update().filter(pk=email_id).first()
        if email is None or email.status != OutboundEmail.Status.QUEUED:
            return email
        error = ""
        try:
            message = EmailMultiAlternatives(
                subject=email.subject, body=crypto.decrypt(email.body_encrypted), to=email.to
            )
            if email.html_encrypted:
                message.attach_alternative(crypto.decrypt(email.html_encrypted), "text/html")
            message.send()
        except Exception as exc:  # any backend error; the body never goes into the message
            error = f"{type(exc).__name__}: {exc}"[:500]
        email.attempts += 1
        email.last_attempt_at = timezone.now()
        if error:
            email.last_error = error
            if email.attempts >= MAX_ATTEMPTS:
                email.status = OutboundEmail.Status.FAILED
                logger.error("E-mail %s failed %d times; giving up: %s", email.pk, email.attempts, error)
        else:
            email.status = OutboundEmail.Status.SENT
            email.sent_at = email.last_attempt_at
            email.last_error = ""
            # Sent: the tokens inside have done their job here; keep no copy.
            email.body_encrypted = email.html_encrypted = ""
        email.save()
    if error and email.status == OutboundEmail.Status.QUEUED:
        raise DeliveryFailed(f"e-mail {email.pk}: attempt {email.attempts} failed")
    return email


# The actor lives beside the function it runs, so that queue_email can enqueue it without importing
# tinko.tasks (which imports this module for its periodic jobs: an import cycle).
@dramatiq.actor(queue_name="email", max_retries=6, min_backoff=5_000, max_backoff=300_000)
def send_email(email_id: int) -> None:
    """Deliver one stored e-mail (:func:`deliver`); Dramatiq retries it with backoff on failure."""
    deliver(email_id)


def requeue_stuck_emails(*, now=None) -> list[int]:
    """Re-enqueue stored mail that no worker has tried for a while (e.g. the broker lost it)."""
    now = now or timezone.now()
    cutoff = now - STUCK_AFTER
    stuck = list(
        OutboundEmail.objects.filter(status=OutboundEmail.Status.QUEUED, created_at__lt=cutoff)
        .exclude(last_attempt_at__gte=cutoff)
        .values_list("pk", flat=True)[:1000]
    )
    for pk in stuck:
        send_email.send(pk)
    if stuck:
        logger.warning("Re-enqueued %d stored e-mails no worker had tried", len(stuck))
    return stuck
