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
# outcome set), code (the PSP's decline or error code for a re-charge, else "").
attempt_finished = Signal()

# A payment was recovered. Arguments: payment (recovered_* set), attempt or None, link or None, previous (status).
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
