from __future__ import annotations

from django.db import transaction

from tinko.tasks import send_email


def queue_email(*, subject: str, body: str, to: list[str], html: str | None = None) -> None:
    """Send an e-mail from a background worker once the current transaction commits.

    The request that caused it does not wait on the mail server, and a rolled
    back transaction sends nothing.
    """
    transaction.on_commit(lambda: send_email.send(subject=subject, body=body, to=list(to), html=html))
