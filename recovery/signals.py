"""What the recovery engine announces: the other apps subscribe, the engine imports none of them.

Sent by :mod:`recovery.transitions` (and, for the double-payment alert, by the
PSP adapters) inside the transaction that made the change, so a receiver's rows
commit or roll back with it. A receiver that reaches the outside world (the
merchant's webhooks, notifications/receivers.py) enqueues with
``transaction.on_commit``. Receivers must be cheap: these fire on the engine's
hot paths (ten thousand attempts a minute); a signal with no receiver costs a
function call. Connected in each subscriber's ``AppConfig.ready``, like the
timeline's sources.
"""

from __future__ import annotations

from django.dispatch import Signal

# Payments first reported (ingestion wrote them with their first plan).
# Arguments: organization_id, payments (list, one organization).
recovery_started = Signal()

# An attempt's run ended or was put off: a re-charge answered (succeeded, failed, skipped, or rescheduled after
# an error), a message was sent, suppressed or deferred. Arguments: payment, attempt (its new status and
# outcome set), code (the PSP's decline or error code for a re-charge, else ""), and batch (a Batch, below) when a
# worker's job records many answers together.
attempt_finished = Signal()

# A payment was recovered. Arguments: payment (recovered_* set), attempt or None, link or None, previous (status),
# and batch when a worker's job recovers many payments together.
payment_recovered = Signal()

# Recoveries ended without payment (the planner found nothing more to do, or the window ended).
# Arguments: payments (list, any organizations).
recovery_exhausted = Signal()

# A recovery was stopped (the merchant, a team member, or the debt closed at the PSP). Arguments: payment, previous.
recovery_cancelled = Signal()

# A customer opened a live pay link. Arguments: link, at.
link_opened = Signal()

# Money arrived for a payment another charge had already recovered (audited by the sender).
# Arguments: payment, first_charge, second_charge, amount, currency.
possible_double_payment = Signal()


class Batch:
    """What receivers put off while a batch transition announces many items (a worker's job of re-charges).

    The batch transitions (recovery.transitions ``finish_recharges``,
    ``recover_many``) send the same signal per item as the single ones, with
    one more argument, ``batch``. A receiver that writes the same kind of row
    for every item (a merchant webhook) may hand it to :meth:`defer` instead of
    writing it at once; :meth:`flush` then calls each deferred writer once with
    all its items, still inside the transaction, before the transition
    returns. A receiver that ignores ``batch`` works as for single items.
    """

    def __init__(self):
        self._work: dict = {}

    def defer(self, key, write, item) -> None:
        """Put off ``write(items)``: items deferred under the same ``key`` are written together, in order."""
        entry = self._work.get(key)
        if entry is None:
            entry = self._work[key] = (write, [])
        entry[1].append(item)

    def flush(self) -> None:
        work, self._work = self._work, {}
        for write, items in work.values():
            write(items)
