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

Source = Callable[[object], Iterable["TimelineEntry"]]


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened.

    ``kind`` is a short machine name the template can style on ("failure",
    "attempt", "message", "link", "webhook", "audit"…); ``title`` a one-line
    summary; ``detail`` plain text (the reason, the codes); ``status`` an
    optional state badge ("delivered", "declined"…); ``data`` extra key/values
    shown as a definition list.
    """

    at: datetime
    kind: str
    title: str
    detail: str = ""
    status: str = ""
    data: dict = field(default_factory=dict)


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
