"""What the planner needs to know about past attempts, loaded in bulk (a few queries per batch)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from recovery.models import AttemptKind, AttemptStatus, Payment, PaymentStatus, RecoveryAttempt, RecoveryLink
from recovery.payday import CustomerTiming, infer_timing
from recovery.planner import VISA_WINDOW, CardHistory, PaymentHistory
from tinko.bulk import literal

_ATTEMPTS = connection.ops.quote_name(RecoveryAttempt._meta.db_table)
_PAYMENTS = connection.ops.quote_name(Payment._meta.db_table)
_LINKS = connection.ops.quote_name(RecoveryLink._meta.db_table)
# RecoveryAttempt.COUNTED in plain SQL (IN works on PostgreSQL and SQLite).
_COUNTED = f"status NOT IN ({', '.join(literal(status) for status in RecoveryAttempt.UNCOUNTED)})"


def payment_histories(payment_ids) -> dict[int, PaymentHistory]:
    histories: dict[int, PaymentHistory] = defaultdict(PaymentHistory)
    payment_ids = list(payment_ids)
    if not payment_ids:
        return histories
    # Plain SQL, like card_histories: every attempt run re-plans its payment, and building this
    # five-aggregate query through the ORM cost more CPU than PostgreSQL took to answer it.
    # CASE rather than FILTER so that SQLite answers it too.
    counted = _COUNTED
    placeholders = ", ".join(["%s"] * len(payment_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT payment_id, "
            f"SUM(CASE WHEN {counted} AND kind = %s THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN {counted} AND kind = %s THEN 1 ELSE 0 END), "
            f"MAX(CASE WHEN {counted} AND kind = %s THEN scheduled_for END), "
            f"MAX(CASE WHEN {counted} THEN scheduled_for END), "
            "MAX(sequence), "
            "SUM(CASE WHEN status IN (%s, %s) THEN 1 ELSE 0 END) "
            f"FROM {_ATTEMPTS} WHERE payment_id IN ({placeholders}) GROUP BY payment_id",
            [
                AttemptKind.AUTO_RETRY, AttemptKind.NOTIFICATION, AttemptKind.NOTIFICATION,
                AttemptStatus.QUEUED, AttemptStatus.RUNNING, *payment_ids,
            ],
        )
        rows = cursor.fetchall()
    for payment_id, auto, notes, last_note, last_step, last_seq, busy in rows:
        history = histories[payment_id]
        history.auto_attempts = int(auto or 0)
        history.notifications = int(notes or 0)
        history.last_notification_at = _aware(last_note)
        history.last_step_at = _aware(last_step)
        history.last_sequence = last_seq or 0
        history.busy = bool(busy)
    return histories


def _aware(when):
    if when is None:
        return None
    if isinstance(when, str):  # SQLite may hand back text
        when = parse_datetime(when)
    if timezone.is_naive(when):  # SQLite stores UTC without an offset
        when = when.replace(tzinfo=dt_timezone.utc)
    return when


def card_histories(*, organization_id: int, card_keys, now: datetime) -> dict[str, CardHistory]:
    """Automatic attempts per card over the card networks' longest window (30 days back, and all future ones)."""
    keys = [k for k in set(card_keys) if k]
    if not keys:
        return defaultdict(CardHistory)
    statement, params = card_history_sql(organization_id=organization_id, card_keys=keys, now=now)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return card_histories_from_rows(rows)


def card_history_sql(*, organization_id: int, card_keys, now: datetime) -> tuple[str, list]:
    """The statement of :func:`card_histories` for non-empty ``card_keys``: rows of (id, card_key, amount,
    currency, scheduled_for). Ingestion of a single report runs it within its one lookup statement
    (tinko.bulk.fetch_together), which keeps each row once by its first column."""
    # Plain SQL (IN works on PostgreSQL and SQLite): this runs for every ingested report.
    keys = list(card_keys)
    placeholders = ", ".join(["%s"] * len(keys))
    return (
        f"SELECT id, card_key, amount, currency, scheduled_for FROM {_ATTEMPTS} "
        # The literal kind matches the partial index attempt_card_history.
        f"WHERE organization_id = %s AND kind = {literal(AttemptKind.AUTO_RETRY)} AND card_key IN ({placeholders}) "
        f"AND scheduled_for > %s AND {_COUNTED}",
        [organization_id, *keys, now - VISA_WINDOW],
    )


def card_histories_from_rows(rows) -> dict[str, CardHistory]:
    """:func:`card_histories` from the rows of :func:`card_history_sql`."""
    cards: dict[str, CardHistory] = defaultdict(CardHistory)
    for _, key, amount, currency, when in rows:
        if isinstance(when, str):  # SQLite may hand back text
            when = parse_datetime(when)
        if timezone.is_naive(when):  # SQLite stores UTC without an offset
            when = when.replace(tzinfo=dt_timezone.utc)
        cards[key].attempts.append((amount, currency, when))
    return cards


# A customer's habits change; a year of history is enough to see a monthly payday.
TIMING_HISTORY = timedelta(days=365)


def customer_timings(*, customers, now: datetime, default_tz) -> dict[int, CustomerTiming]:
    """What each customer's own history says about their payday and the hour they read messages (one query).

    ``customers`` are Customer rows (their time zone decides local days and
    hours; ``default_tz`` when they have none). Payments that went through are
    the customer's recovered payments; opens are their pay links' first and
    last opening. Customers without a pattern get :data:`NO_TIMING`.
    """
    # A customer first seen in this very batch has no history: no statement for them (ingestion's budget).
    customers = {c.pk: c for c in customers if c is not None and c.created_at < now}
    if not customers:
        return {}
    since = now - TIMING_HISTORY
    paid: dict[int, list[datetime]] = defaultdict(list)
    opened: dict[int, list[datetime]] = defaultdict(list)
    # One statement (this runs for every planned payment): recoveries, then the pay links' openings.
    placeholders = ", ".join(["%s"] * len(customers))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT customer_id, recovered_at, NULL, 1 FROM {_PAYMENTS} "
            f"WHERE customer_id IN ({placeholders}) AND status = %s AND recovered_at > %s "
            "UNION ALL "
            f"SELECT p.customer_id, l.first_opened_at, l.last_opened_at, 0 FROM {_LINKS} l "
            f"JOIN {_PAYMENTS} p ON p.id = l.payment_id "
            f"WHERE p.customer_id IN ({placeholders}) AND l.first_opened_at > %s",
            [*customers, PaymentStatus.RECOVERED, since, *customers, since],
        )
        rows = cursor.fetchall()
    for customer_id, first, last, is_payment in rows:
        if is_payment:
            paid[customer_id].append(_aware(first))
            continue
        opened[customer_id].append(_aware(first))
        if last is not None and _aware(last) != _aware(first):
            opened[customer_id].append(_aware(last))
    timings = {}
    for pk, customer in customers.items():
        if pk not in paid and pk not in opened:
            continue
        tz = ZoneInfo(customer.timezone) if customer.timezone else default_tz
        timings[pk] = infer_timing(paid=paid[pk], opened=opened[pk], tz=tz)
    return timings
