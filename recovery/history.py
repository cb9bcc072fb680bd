"""What the planner needs to know about past attempts, loaded in bulk (a few queries per batch)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import connection
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from recovery.models import AttemptKind, AttemptStatus, RecoveryAttempt
from recovery.planner import VISA_WINDOW, CardHistory, PaymentHistory

# Attempts that happened or will happen: cancelled and skipped ones never reached the card.
COUNTED = ~Q(status__in=[AttemptStatus.CANCELLED, AttemptStatus.SKIPPED])


def payment_histories(payment_ids) -> dict[int, PaymentHistory]:
    histories: dict[int, PaymentHistory] = defaultdict(PaymentHistory)
    if not payment_ids:
        return histories
    rows = (
        RecoveryAttempt.objects.filter(payment_id__in=payment_ids)
        .values("payment_id")
        .annotate(
            auto=Count("id", filter=COUNTED & Q(kind=AttemptKind.AUTO_RETRY)),
            notes=Count("id", filter=COUNTED & Q(kind=AttemptKind.NOTIFICATION)),
            last_note=Max("scheduled_for", filter=COUNTED & Q(kind=AttemptKind.NOTIFICATION)),
            last_seq=Max("sequence"),
            busy=Count("id", filter=Q(status__in=[AttemptStatus.QUEUED, AttemptStatus.RUNNING])),
        )
        .order_by()
    )
    for row in rows:
        history = histories[row["payment_id"]]
        history.auto_attempts = row["auto"]
        history.notifications = row["notes"]
        history.last_notification_at = row["last_note"]
        history.last_sequence = row["last_seq"] or 0
        history.busy = bool(row["busy"])
    return histories


def card_histories(*, organization_id: int, card_keys, now: datetime) -> dict[str, CardHistory]:
    """Automatic attempts per card over the card networks' longest window (30 days back, and all future ones)."""
    cards: dict[str, CardHistory] = defaultdict(CardHistory)
    keys = [k for k in set(card_keys) if k]
    if not keys:
        return cards
    # Plain SQL (IN works on PostgreSQL and SQLite): this runs for every ingested report.
    placeholders = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT card_key, amount, currency, scheduled_for FROM recovery_recoveryattempt "
            # The literal kind matches the partial index attempt_card_history.
            f"WHERE organization_id = %s AND kind = 'auto_retry' AND card_key IN ({placeholders}) "
            "AND scheduled_for > %s AND status NOT IN (%s, %s)",
            [organization_id, *keys, now - VISA_WINDOW, AttemptStatus.CANCELLED, AttemptStatus.SKIPPED],
        )
        rows = cursor.fetchall()
    for key, amount, currency, when in rows:
        if isinstance(when, str):  # SQLite may hand back text
            when = parse_datetime(when)
        if timezone.is_naive(when):  # SQLite stores UTC without an offset
            when = when.replace(tzinfo=dt_timezone.utc)
        cards[key].attempts.append((amount, currency, when))
    return cards
