"""What the recovery engine needs from other apps, as ports they fill in at start-up.

The engine decides *that* a customer gets a message; notifications decides how
(templates, the respect rules, channels, delivery). The engine calls the port,
never the notifications app: ``NotificationsConfig.ready`` registers its
messenger here, as apps register the timeline's sources
(recovery.timeline.register_source) and the scheduler's tick.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol


class SendResult(Protocol):
    sent: bool  # a message was stored to go out (False: suppressed, with the reason in ``outcome``)
    outcome: str  # the attempt's outcome, in words
    retry_at: datetime | None  # set when the respect rules put the message off (quiet hours, the daily cap)


class Messenger(Protocol):
    """Sends the engine's messages to customers. Must not move money."""

    def enabled_channels(self) -> set[str]:
        """The channels this deployment can send on."""

    def address_for(self, customer, channel: str) -> str:
        """The customer's address on ``channel`` ("" if none)."""

    def load_facts(self, messages, *, now) -> Any:
        """What the respect rules read, once for a batch: ``messages`` are (organization, customer, channel, address)."""

    def send_for_attempt(self, *, payment, attempt, now, facts=None) -> SendResult:
        """Record the attempt's message (queued or suppressed) inside the caller's transaction, which holds the
        payment's lock; it leaves after commit. Sets ``attempt.link`` when the message carries a pay link."""

    def stored_together(self) -> AbstractContextManager:
        """A block (inside the caller's transaction) whose messages' rows are written together at its end, in the
        order stored; their delivery is scheduled then, after commit as always. Nothing may read them before."""

    def delivery_batch(self) -> AbstractContextManager:
        """A block whose stored messages are enqueued together at its end (a worker's batch of attempts)."""


_messenger: Messenger | None = None


def register_messenger(messenger: Messenger) -> None:
    global _messenger
    _messenger = messenger


def messenger() -> Messenger:
    if _messenger is None:
        raise RuntimeError("No messenger is registered: the notifications app registers one when it starts.")
    return _messenger
