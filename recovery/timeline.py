"""A payment's timeline: everything that happened to it, oldest first, from every app that knows something.

The recovery engine contributes failure events, attempts and link opens; other
apps (notifications, merchant webhooks) add their own entries by registering a
source in their ``AppConfig.ready()``::

    from recovery.timeline import register_source
    register_source(my_entries)   # my_entries(payment) -> iterable of TimelineEntry

The console's payment detail page renders :func:`payment_timeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.translation import gettext_lazy as _

Source = Callable[[object], Iterable["TimelineEntry"]]


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened.

    ``kind`` is a short machine name the template can style on ("failure",
    "attempt", "message", "link", "webhook", "audit"…); ``title`` a one-line
    summary; ``detail`` plain text (the reason, the codes); ``status`` an
    optional state code ("delivered", "declined"…), shown as a badge in words;
    ``data`` extra label/value pairs shown as a definition list.

    Everything shown is for people: titles and labels translated, amounts as
    money, times through tinko.formatting (the organization's zone, the
    reader's language), never raw codes, ISO strings or None.
    """

    at: datetime
    kind: str
    title: str
    detail: str = ""
    status: str = ""
    data: dict = field(default_factory=dict)

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS.get(self.kind, self.kind.replace("_", " ").capitalize()))

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS.get(self.status, self.status.replace("_", " ").capitalize()))


KIND_LABELS = {
    "failure": _("Failure"),
    "attempt": _("Re-charge"),
    "message": _("Message"),
    "link": _("Pay link"),
    "webhook": _("Webhook"),
    "audit": _("Action"),
    "reconciliation": _("Check"),
    "card": _("Card"),
}

# Every state a source reports, in words (sources keep the code in ``status``: code reads it).
STATUS_LABELS = {
    "planned": _("Planned"),
    "scheduled": _("Scheduled"),
    "queued": _("Queued"),
    "running": _("Running"),
    "succeeded": _("Succeeded"),
    "failed": _("Failed"),
    "skipped": _("Skipped"),
    "cancelled": _("Cancelled"),
    "created": _("Created"),
    "opened": _("Opened"),
    "completed": _("Paid"),
    "revoked": _("Revoked"),
    "expired": _("Expired"),
    "sent": _("Sent"),
    "delivered": _("Delivered"),
    "bounced": _("Bounced"),
    "suppressed": _("Held back"),
    "pending": _("Pending"),
    "received": _("Received"),
    "rejected": _("Rejected"),
    "processed": _("Processed"),
    "ignored": _("Ignored"),
    "paid": _("Paid"),
    "unpaid": _("Unpaid"),
    "error": _("Error"),
    "disabled": _("Disabled"),
    # A failure's classification (Action).
    "auto_retry": _("Re-charge automatically"),
    "customer_action": _("Customer must act"),
    "stop": _("No retry"),
}


_sources: list[Source] = []


def register_source(source: Source) -> Source:
    """Add ``source`` (a callable taking the payment) to every timeline. Idempotent; usable as a decorator."""
    if source not in _sources:
        _sources.append(source)
    return source


def payment_timeline(payment) -> list[TimelineEntry]:
    """Every registered source's entries for ``payment``, oldest first (stable for equal times)."""
    entries: list[TimelineEntry] = []
    for source in _sources:
        entries.extend(source(payment))
    entries.sort(key=lambda entry: entry.at)
    return entries
