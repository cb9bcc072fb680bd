"""How far behind the recovery engine is, for the metrics (tinko/metrics.py reads it at each scrape).

Each figure is one query on a partial index (``attempt_due``, ``attempt_leased``),
counting at most COUNT_CAP rows, so a scrape stays cheap however large the backlog.
"""

from __future__ import annotations

from django.db.models import Min
from django.utils import timezone

from recovery.models import AttemptStatus, RecoveryAttempt

COUNT_CAP = 100_000


def gauges() -> list[tuple[str, str, float]]:
    """(metric name, help, value) for the due attempts, the oldest one's wait and the expired leases."""
    now = timezone.now()
    due = RecoveryAttempt.objects.filter(status=AttemptStatus.SCHEDULED, scheduled_for__lte=now)
    count = due.order_by("scheduled_for").values("pk")[:COUNT_CAP].count()
    oldest = due.aggregate(oldest=Min("scheduled_for"))["oldest"] if count else None
    leases = (
        RecoveryAttempt.objects.filter(status__in=[AttemptStatus.QUEUED, AttemptStatus.RUNNING], lease_expires_at__lte=now)
        .order_by("lease_expires_at").values("pk")[:COUNT_CAP].count()
    )
    return [
        ("tinko_recovery_due_attempts", f"Recovery attempts due now and not yet claimed (counted up to {COUNT_CAP}).", count),
        ("tinko_recovery_oldest_due_attempt_age_seconds",
         "How long the oldest due, unclaimed recovery attempt has been waiting (0 when none).",
         max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0),
        ("tinko_recovery_expired_leases",
         "Attempts queued or running past their lease (a lost message or a dead worker), not yet claimed again.", leases),
    ]
