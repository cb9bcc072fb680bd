"""Keeping the daily rollups (analytics/models.py) in step with the payments.

:func:`refresh` re-rolls only the failure days (in the organization's time
zone) of payments whose ``updated_at`` moved since the last refresh, so a
dashboard view after a quiet minute costs one index probe. Every service that
changes a payment (ingestion, the runner, recovery, the expiry sweep) sets
``updated_at``; a commit that lands after the refresh read its snapshot is
caught by the next one thanks to ``MARGIN``. A time-zone change re-rolls all.

Two ways to the same rows (tests/analytics/test_rollups.py checks they agree):
on PostgreSQL one ``INSERT … SELECT … GROUP BY`` per table (its own SQL, below);
elsewhere (local mode, SQLite) Python over keyset chunks of payments with their
attempts and events, so memory stays flat at a million payments.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, Q, When
from django.db.models import BooleanField as BooleanF
from django.utils import timezone

from analytics.models import ComplianceRollup, DailyRollup, RecoveryTimeRollup, RolledPayment, RollupState
from recovery.models import AttemptKind, FailureEvent, NetworkLimit, Payment, PaymentStatus, RecoveryAttempt
from tinko import bulk
from tinko.bulk import literal

# A payment updated in a transaction that commits this long after its updated_at is still seen.
MARGIN = timedelta(minutes=5)
# A page view's refresh: enough for a commit that lands while the previous refresh runs (a
# request's transaction is short); anything slower is caught by the minute job's MARGIN.
LIVE_MARGIN = timedelta(seconds=10)
CHUNK = 5000
# Mastercard Merchant Advice Codes that set the earliest retry.
ADVICE_WAIT_CODES = [str(n) for n in range(24, 31)]


def outcome_of(status: str) -> str:
    if status == PaymentStatus.RECOVERED:
        return "recovered"
    if status in Payment.OPEN:
        return "open"
    return "closed"


def hours_bucket(seconds: float) -> int:
    """Whole hours to recover: exact within two days, in 6-hour steps to two weeks, whole days beyond.

    Cohort boundaries (1, 3, 7, 14, 30 days) fall on bucket edges, so cohorts are exact.
    """
    hours = max(0, int(seconds // 3600))
    if hours < 48:
        return hours
    if hours < 336:
        return hours - hours % 6
    return hours - hours % 24


def brand_of(card_brand: str) -> str:
    brand = (card_brand or "").lower()
    return brand if brand in ("visa", "mastercard") else "other"


def day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def _day_ranges(days: set[date], tz: ZoneInfo) -> Q:
    """One range condition per run of consecutive days (index-friendly)."""
    ordered = sorted(days)
    q = Q()
    start = prev = ordered[0]
    for day in ordered[1:] + [None]:
        if day is not None and day == prev + timedelta(days=1):
            prev = day
            continue
        q |= Q(first_failed_at__gte=day_start(start, tz), first_failed_at__lt=day_start(prev + timedelta(days=1), tz))
        if day is not None:
            start = prev = day
    return q


def _state(organization) -> RollupState:
    state = RollupState.objects.filter(organization=organization).first()
    if state is None:
        state = RollupState(organization=organization)
        if not Payment.objects.filter(organization=organization).exists():
            # Nothing to roll yet: up to date as of now (later payments are newer than this).
            state.timezone = organization.timezone
            state.refreshed_through = state.refreshed_at = timezone.now()
        # ON CONFLICT DO NOTHING: a concurrent first refresh may create it at the same moment; the
        # instance is only read (refresh locks and re-reads the row before changing it).
        RollupState.objects.bulk_create([state], ignore_conflicts=True)
    return state


def current_state(organization) -> RollupState | None:
    """The state the last :func:`refresh` call on this instance saw or left (no query when there was one)."""
    state = getattr(organization, "_analytics_state", None)
    return state if state is not None else RollupState.objects.filter(organization=organization).first()


# A full rebuild (new time zone, first use) is done during a request only below this many
# payments; above, the minute job (analytics.tasks) does it and the dashboard says so.
INLINE_REBUILD_LIMIT = 20_000


def refresh(organization, *, full: bool = False, max_age: timedelta | None = None, inline: bool = False,
            margin: timedelta = MARGIN, live: bool = False) -> int | None:
    """Bring ``organization``'s rollups up to date; the number of failure days re-rolled (-1: all).

    None when nothing was done: another refresh of the same organization is
    running (its result will be there in a moment; the caller reads the rollups
    as they are), the last refresh is younger than ``max_age``, or (``inline``)
    a full rebuild is too big for a request.

    ``margin``: how far before the last refresh's start changed payments are
    looked for again. The minute job keeps the full ``MARGIN`` (a transaction
    that commits minutes after it set ``updated_at``); a page view passes
    ``LIVE_MARGIN``, so it re-rolls only what changed since about the last
    refresh and every change committed before the view is in its figures.

    ``live`` (a page view): bring the payment and recovery-time rollups up to
    date by differences (:func:`_apply_changes`): per changed payment, what it
    adds now less what it added when last rolled (``RolledPayment``), so the
    cost follows the changed payments, not the size of their days (re-rolling
    a day reads its ~2,700 payments at a million, scattered over the table:
    20 ms warm, 100–200 ms from disk). Their card-network counts (a scan of
    every attempt of the day) and the compaction of the difference rows are
    left to the next refresh that is not live, which re-rolls in full the
    days recorded in ``RollupState.compliance_pending``.
    """
    state = organization._analytics_state = _state(organization)
    if max_age is not None and state.refreshed_at is not None and timezone.now() - state.refreshed_at < max_age:
        if state.timezone == organization.timezone:
            return None
    with transaction.atomic():
        locked = RollupState.objects.select_for_update(skip_locked=True).filter(organization=organization).first()
        if locked is None:
            return None
        state = organization._analytics_state = locked
        started = timezone.now()
        tz = ZoneInfo(organization.timezone)
        if full or state.timezone != organization.timezone or state.refreshed_through is None:
            days = None
            total = Payment.objects.filter(organization=organization).count()
            if inline and total > INLINE_REBUILD_LIMIT:
                return None
            if not total and state.refreshed_at is None:
                days = set()  # never rolled and nothing to roll
        else:
            changed = list(
                Payment.objects.filter(organization=organization, updated_at__gt=state.refreshed_through - margin)
                .values_list("pk", "first_failed_at", "updated_at")
            )
            rolled = _rolled_versions(organization)
            days = {failed_at.astimezone(tz).date() for pk, failed_at, updated_at in changed
                    if rolled.get(pk) != updated_at.isoformat()}
            _remember_rolled(organization, changed)
        pending = {date.fromisoformat(day) for day in state.compliance_pending}
        if days is None:
            _rebuild(organization, tz, None)
            state.compliance_pending = []
        elif live:
            if days:
                    days |= _apply_changes(organization, tz, [pk for pk, failed_at, updated_at in changed
                                                          if rolled.get(pk) != updated_at.isoformat()])
            state.compliance_pending = sorted(day.isoformat() for day in pending | days)
        else:
            if days or pending:
                _rebuild(organization, tz, days | pending)
            state.compliance_pending = []
        state.timezone = organization.timezone
        state.refreshed_through = started
        state.refreshed_at = timezone.now()
        state.save()
    return len(days) if days is not None else -1


# The payment versions (id → updated_at) the last refresh found in its window, all in the rollups
# once it committed. The next refresh skips those it finds again unchanged: a page view a few
# seconds after a change re-rolls nothing, while a late commit (a version not seen) is still
# re-rolled. Only an optimisation: a lost or missing entry means a re-roll, never a wrong figure.
ROLLED_KEY = "analytics:rolled:{}"
ROLLED_MAX = 20_000


def _rolled_versions(organization) -> dict[int, str]:
    return cache.get(ROLLED_KEY.format(organization.pk)) or {}


def _remember_rolled(organization, changed) -> None:
    key = ROLLED_KEY.format(organization.pk)
    versions = {pk: updated_at.isoformat() for pk, _, updated_at in changed} if len(changed) <= ROLLED_MAX else None

    def remember():
        if versions is None:
            cache.delete(key)
        else:
            cache.set(key, versions, timeout=int(MARGIN.total_seconds()) * 2)

    # Only once the re-rolled days are committed is it true that these versions are in the rollups.
    transaction.on_commit(remember)


_SAME = object()


def _rebuild(organization, tz: ZoneInfo, days: set[date] | None, *, compliance_days=_SAME) -> None:
    """Re-roll ``days`` (None: every day), and the card-network counts of ``compliance_days`` (default: the same)."""
    if compliance_days is _SAME:
        compliance_days = days
    if not bulk.is_postgresql():
        # Local mode is small: one pass in Python computes every table, for all the days concerned.
        days = None if days is None or compliance_days is None else days | compliance_days
        compliance_days = days
    for models, which in (((DailyRollup, RecoveryTimeRollup, RolledPayment), days), ((ComplianceRollup,), compliance_days)):
        for model in models:
            rows = model.objects.filter(organization=organization)
            if which is not None:
                rows = rows.filter(day__in=which)
            rows.delete()
    if not bulk.is_postgresql():
        _rebuild_python(organization, tz, days)
        return
    if days is None or days:
        _rebuild_sql(organization, tz, days, statements=(_ROLLED_SQL, _DAILY_SQL, _TIMES_SQL))
    if compliance_days is None or compliance_days:
        _rebuild_sql(organization, tz, compliance_days, statements=(_COMPLIANCE_SQL,))


# What a payment adds to the rollups is computed from these columns, in Python (local mode, a page
# view's differences) as in SQL (_ROLLED_SQL); tests/analytics/test_rollups.py checks they agree.
_CONTRIBUTION_COLUMNS = (
    "pk", "first_failed_at", "currency", "category", "provider", "holdout_group", "status", "recovered_channel",
    "recovered_attempt__sequence", "amount", "recovered_amount", "recovered_at",
)


def _contribution(row, tz: ZoneInfo, org_id: int) -> RolledPayment:
    """What one payment (a row of _CONTRIBUTION_COLUMNS) adds to the payment and recovery-time rollups."""
    pk, failed_at, currency, category, provider, group, status, channel, seq, amount, rec_amount, rec_at = row[:12]
    outcome = outcome_of(status)
    recovered = outcome == "recovered"
    return RolledPayment(
        payment_id=pk, organization_id=org_id, day=failed_at.astimezone(tz).date(), currency=currency,
        category=category or "unknown", provider=provider, holdout_group=group, outcome=outcome,
        channel=(channel or "other") if recovered else "", attempt_number=(seq or 0) if recovered else 0,
        amount=amount, recovered_amount=(rec_amount if rec_amount is not None else amount) if recovered else 0,
        hours=hours_bucket((rec_at - failed_at).total_seconds()) if recovered and rec_at is not None else None,
    )


def _daily_key(r: RolledPayment) -> tuple:
    return (r.day, r.currency, r.category, r.provider, r.holdout_group, r.outcome, r.channel, r.attempt_number)


def _times_key(r: RolledPayment) -> tuple:
    return (r.day, r.currency, r.holdout_group, r.hours)


def _write_rollup_rows(org_id: int, daily: dict, times: dict) -> None:
    DailyRollup.objects.bulk_create(
        [
            DailyRollup(organization_id=org_id, day=k[0], currency=k[1], category=k[2], provider=k[3],
                        holdout_group=k[4], outcome=k[5], channel=k[6], attempt_number=k[7],
                        payments=v[0], amount=v[1], recovered_amount=v[2])
            for k, v in daily.items()
        ],
        batch_size=2000,
    )
    RecoveryTimeRollup.objects.bulk_create(
        [
            RecoveryTimeRollup(organization_id=org_id, day=k[0], currency=k[1], holdout_group=k[2], hours=k[3],
                               payments=v[0], recovered_amount=v[1])
            for k, v in times.items()
        ],
        batch_size=2000,
    )


def _apply_changes(organization, tz: ZoneInfo, payment_ids: list[int]) -> set[date]:
    """Bring the payment and recovery-time rollups up to date with ``payment_ids`` by differences.

    Per payment, a row of what it adds now and one of minus what it added when
    last rolled (its RolledPayment, which is then replaced): readers sum rows,
    so the figures are exactly those of a re-roll. Applying it twice changes
    nothing the second time. Returns the days whose rows changed (the old day
    of a payment whose first failure moved, too), for the next full re-roll to
    compact. Needs every payment rolled before (a full rebuild fills
    RolledPayment), which refresh() ensures.
    """
    org_id = organization.pk
    touched: set[date] = set()
    for start in range(0, len(payment_ids), CHUNK):
        ids = payment_ids[start:start + CHUNK]
        now = [_contribution(row, tz, org_id) for row in
               Payment.objects.filter(organization=organization, pk__in=ids).values_list(*_CONTRIBUTION_COLUMNS)]
        before = list(RolledPayment.objects.filter(organization=organization, payment_id__in=ids))
        daily: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        times: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        for sign, rows in ((-1, before), (1, now)):
            for r in rows:
                d = daily[_daily_key(r)]
                d[0] += sign
                d[1] += sign * r.amount
                d[2] += sign * r.recovered_amount
                if r.hours is not None:
                    t = times[_times_key(r)]
                    t[0] += sign
                    t[1] += sign * r.recovered_amount
        daily = {k: v for k, v in daily.items() if any(v)}
        times = {k: v for k, v in times.items() if any(v)}
        _write_rollup_rows(org_id, daily, times)
        touched |= {k[0] for k in daily} | {k[0] for k in times}
        RolledPayment.objects.filter(organization=organization, payment_id__in=ids).delete()
        RolledPayment.objects.bulk_create(now, batch_size=2000)
    return touched


def _rebuild_python(organization, tz: ZoneInfo, days: set[date] | None) -> None:
    """The rollups computed in Python from keyset chunks of payments (local mode, SQLite)."""

    payments = Payment.objects.filter(organization=organization)
    if days is not None:
        payments = payments.filter(_day_ranges(days, tz))
    payments = payments.annotate(
        limited=Case(When(~Q(limit_code=""), then=True), default=False, output_field=BooleanF())
    ).order_by("pk")
    columns = (*_CONTRIBUTION_COLUMNS, "card_brand", "limited")

    daily: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    times: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    comp: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    org_id = organization.pk

    last = 0
    while True:
        chunk = list(payments.filter(pk__gt=last).values_list(*columns)[:CHUNK])
        if not chunk:
            break
        last = chunk[-1][0]
        ids = [row[0] for row in chunk]
        autos = _auto_attempts(ids)
        stops, waits, moved = _network_facts(ids, autos)
        rolled = []
        for row in chunk:
            pk, card_brand, limited = row[0], row[12], row[13]
            r = _contribution(row, tz, org_id)
            rolled.append(r)
            d = daily[_daily_key(r)]
            d[0] += 1
            d[1] += r.amount
            d[2] += r.recovered_amount
            if r.hours is not None:
                t = times[_times_key(r)]
                t[0] += 1
                t[1] += r.recovered_amount
            when = autos.get(pk, [])
            c = comp[(r.day, brand_of(card_brand), min(len(when), 32767), _peak_24h(when))]
            c[0] += 1
            c[1] += stops.get(pk, 0)
            c[2] += 1 if (limited or pk in moved) else 0
            wait_total, wait_ok = waits.get(pk, (0, 0))
            c[3] += wait_total
            c[4] += wait_ok
        # A payment whose first failure moved from a day not re-rolled now still has its row there.
        RolledPayment.objects.filter(payment_id__in=ids).delete()
        RolledPayment.objects.bulk_create(rolled, batch_size=2000)

    _write_rollup_rows(org_id, daily, times)
    ComplianceRollup.objects.bulk_create(
        [
            ComplianceRollup(organization_id=org_id, day=k[0], brand=k[1], auto_attempts=k[2], peak_24h=k[3],
                             payments=v[0], network_stops=v[1], limit_refusals=v[2], advice_waits=v[3],
                             advice_waits_honoured=v[4])
            for k, v in comp.items()
        ],
        batch_size=2000,
    )


def _auto_attempts(payment_ids) -> dict[int, list[datetime]]:
    """Automatic re-charges made or scheduled (what the networks count), per payment, in time order."""
    found: dict[int, list[datetime]] = defaultdict(list)
    rows = (
        RecoveryAttempt.objects.filter(RecoveryAttempt.COUNTED, payment_id__in=payment_ids, kind=AttemptKind.AUTO_RETRY)
        .order_by("payment_id", "scheduled_for")
        .values_list("payment_id", "scheduled_for")
    )
    for payment_id, when in rows:
        found[payment_id].append(when)
    return found


def _peak_24h(times: list[datetime]) -> int:
    peak = 0
    for i, when in enumerate(times):
        # attempts in (when - 24 h, when]
        start = bisect.bisect_right(times, when - timedelta(hours=24), 0, i + 1)
        peak = max(peak, i + 1 - start)
    return peak


def _network_facts(payment_ids, autos) -> tuple[dict[int, int], dict[int, tuple[int, int]], set[int]]:
    """(network stops per payment, (advice waits, honoured) per payment, payments moved by the Mastercard limit)."""
    stops: dict[int, int] = defaultdict(int)
    waits: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    events = FailureEvent.objects.filter(
        Q(network_stop=True) | Q(network_advice_code__in=ADVICE_WAIT_CODES, min_delay_seconds__gt=0),
        payment_id__in=payment_ids,
    ).values_list("payment_id", "network_stop", "network_advice_code", "occurred_at", "min_delay_seconds")
    for payment_id, network_stop, advice, occurred_at, min_delay in events:
        if network_stop:
            stops[payment_id] += 1
            continue
        following = [t for t in autos.get(payment_id, []) if t > occurred_at]
        if following:
            w = waits[payment_id]
            w[0] += 1
            w[1] += following[0] >= occurred_at + timedelta(seconds=min_delay)
    moved = set(
        RecoveryAttempt.objects.filter(
            payment_id__in=payment_ids, kind=AttemptKind.AUTO_RETRY, limit_code=NetworkLimit.MASTERCARD_10_24H
        ).values_list("payment_id", flat=True)
    )
    return stops, {k: (v[0], v[1]) for k, v in waits.items()}, moved


# --- PostgreSQL: the same rollups, set-based ------------------------------------------------------
# One INSERT … SELECT … GROUP BY per table: a million payments and three million attempts roll
# up in seconds instead of minutes in Python, so the minute job and an occasional page view
# can afford it. tests/analytics/test_rollups.py checks both ways give the same rows.
# The recovering attempt's number is a correlated lookup by primary key, not a join: a hash
# join on recovered_attempt_id puts every unrecovered payment (NULL) in one bucket, and at
# 300,000 payments PostgreSQL split that bucket into 65,536 batches (two minutes instead of one second).

_SCOPE = "p.organization_id = %(org)s{ranges}"
_DAY = "(p.first_failed_at AT TIME ZONE %(tz)s)::date"
_RECOVERED = f"p.status = {literal(PaymentStatus.RECOVERED)}"
_OPEN = f"p.status IN ({', '.join(literal(s) for s in sorted(Payment.OPEN))})"
_AUTO = f"a.kind = {literal(AttemptKind.AUTO_RETRY)}"
_COUNTED = f"a.status NOT IN ({', '.join(literal(s) for s in RecoveryAttempt.UNCOUNTED)})"
_PAYMENTS, _ATTEMPTS, _EVENTS = (
    connection.ops.quote_name(m._meta.db_table) for m in (Payment, RecoveryAttempt, FailureEvent)
)
_DAILY, _TIMES, _COMPLIANCE, _ROLLED = (
    connection.ops.quote_name(m._meta.db_table) for m in (DailyRollup, RecoveryTimeRollup, ComplianceRollup, RolledPayment)
)
_HOURS = "GREATEST(0, FLOOR(EXTRACT(EPOCH FROM p.recovered_at - p.first_failed_at) / 3600))::int"

_BUCKET = "CASE WHEN h < 48 THEN h WHEN h < 336 THEN h - h %% 6 ELSE h - h %% 24 END"

# What each payment adds (RolledPayment), then the payment and recovery-time rollups summed from those
# rows: the day's payments are read once, and a page view can subtract a payment's row later.
_ROLLED_SQL = f"""
INSERT INTO {_ROLLED} (payment_id, organization_id, day, currency, category, provider, holdout_group,
                                     outcome, channel, attempt_number, amount, recovered_amount, hours)
SELECT p.id, %(org)s, {_DAY}, p.currency, COALESCE(NULLIF(p.category, ''), 'unknown'), p.provider, p.holdout_group,
       CASE WHEN {_RECOVERED} THEN 'recovered' WHEN {_OPEN} THEN 'open' ELSE 'closed' END,
       CASE WHEN {_RECOVERED} THEN COALESCE(NULLIF(p.recovered_channel, ''), 'other') ELSE '' END,
       CASE WHEN {_RECOVERED} THEN COALESCE(
           (SELECT a.sequence FROM {_ATTEMPTS} a WHERE a.id = p.recovered_attempt_id), 0) ELSE 0 END,
       p.amount, CASE WHEN {_RECOVERED} THEN COALESCE(p.recovered_amount, p.amount) ELSE 0 END,
       CASE WHEN {_RECOVERED} AND p.recovered_at IS NOT NULL THEN {_BUCKET} END
FROM {_PAYMENTS} p CROSS JOIN LATERAL (SELECT {_HOURS} AS h) hours
WHERE {_SCOPE}
ON CONFLICT (payment_id) DO UPDATE SET
    organization_id = EXCLUDED.organization_id, day = EXCLUDED.day, currency = EXCLUDED.currency,
    category = EXCLUDED.category, provider = EXCLUDED.provider, holdout_group = EXCLUDED.holdout_group,
    outcome = EXCLUDED.outcome, channel = EXCLUDED.channel, attempt_number = EXCLUDED.attempt_number,
    amount = EXCLUDED.amount, recovered_amount = EXCLUDED.recovered_amount, hours = EXCLUDED.hours
"""

_DAILY_SQL = f"""
INSERT INTO {_DAILY} (organization_id, day, currency, category, provider, holdout_group, outcome,
                                   channel, attempt_number, payments, amount, recovered_amount)
SELECT %(org)s, r.day, r.currency, r.category, r.provider, r.holdout_group, r.outcome, r.channel, r.attempt_number,
       COUNT(*), SUM(r.amount), SUM(r.recovered_amount)
FROM {_ROLLED} r
WHERE r.organization_id = %(org)s{{rolled_days}}
GROUP BY 2, 3, 4, 5, 6, 7, 8, 9
"""

_TIMES_SQL = f"""
INSERT INTO {_TIMES} (organization_id, day, currency, holdout_group, hours, payments, recovered_amount)
SELECT %(org)s, r.day, r.currency, r.holdout_group, r.hours, COUNT(*), SUM(r.recovered_amount)
FROM {_ROLLED} r
WHERE r.organization_id = %(org)s AND r.hours IS NOT NULL{{rolled_days}}
GROUP BY 2, 3, 4, 5
"""

_COMPLIANCE_SQL = f"""
WITH p AS MATERIALIZED (
    SELECT p.id, {_DAY} AS day,
           CASE LOWER(p.card_brand) WHEN 'visa' THEN 'visa' WHEN 'mastercard' THEN 'mastercard' ELSE 'other' END AS brand,
           p.limit_code <> '' AS limited
    FROM {_PAYMENTS} p WHERE {_SCOPE}
),
auto AS (
    SELECT a.payment_id, a.scheduled_for,
           COUNT(*) OVER (PARTITION BY a.payment_id ORDER BY a.scheduled_for
                          RANGE BETWEEN INTERVAL '24 hours' - INTERVAL '1 microsecond' PRECEDING AND CURRENT ROW) AS in_24h
    FROM {_ATTEMPTS} a JOIN p ON p.id = a.payment_id
    WHERE {_AUTO} AND {_COUNTED}
),
per_payment AS (SELECT payment_id, COUNT(*) AS autos, MAX(in_24h) AS peak FROM auto GROUP BY payment_id),
moved AS (
    SELECT DISTINCT a.payment_id FROM {_ATTEMPTS} a JOIN p ON p.id = a.payment_id
    WHERE {_AUTO} AND a.limit_code = {literal(NetworkLimit.MASTERCARD_10_24H)}
),
events AS (
    SELECT e.payment_id,
           COUNT(*) FILTER (WHERE e.network_stop) AS stops,
           COUNT(nxt.at) FILTER (WHERE NOT e.network_stop) AS waits,
           COUNT(*) FILTER (WHERE NOT e.network_stop AND nxt.at >= e.occurred_at + e.min_delay_seconds * INTERVAL '1 second') AS honoured
    FROM {_EVENTS} e JOIN p ON p.id = e.payment_id
    LEFT JOIN LATERAL (
        SELECT MIN(a.scheduled_for) AS at FROM {_ATTEMPTS} a
        WHERE a.payment_id = e.payment_id AND {_AUTO} AND {_COUNTED}
          AND a.scheduled_for > e.occurred_at
    ) nxt ON NOT e.network_stop
    WHERE e.network_stop OR (e.network_advice_code = ANY(%(advice)s) AND e.min_delay_seconds > 0)
    GROUP BY e.payment_id
)
INSERT INTO {_COMPLIANCE} (organization_id, day, brand, auto_attempts, peak_24h, payments, network_stops,
                                        limit_refusals, advice_waits, advice_waits_honoured)
SELECT %(org)s, p.day, p.brand, LEAST(COALESCE(pp.autos, 0), 32767), COALESCE(pp.peak, 0), COUNT(*),
       COALESCE(SUM(ev.stops), 0), COUNT(*) FILTER (WHERE p.limited OR mv.payment_id IS NOT NULL),
       COALESCE(SUM(ev.waits), 0), COALESCE(SUM(ev.honoured), 0)
FROM p LEFT JOIN per_payment pp ON pp.payment_id = p.id LEFT JOIN events ev ON ev.payment_id = p.id
LEFT JOIN moved mv ON mv.payment_id = p.id
GROUP BY 2, 3, 4, 5
"""


def _rebuild_sql(organization, tz: ZoneInfo, days: set[date] | None, *, statements=None) -> None:
    params = {
        "org": organization.pk, "tz": tz.key, "advice": ADVICE_WAIT_CODES,
    }
    ranges = rolled_days = ""
    if days is not None:
        clauses = []
        for i, (start, end) in enumerate(_day_runs(days)):
            params[f"s{i}"], params[f"e{i}"] = day_start(start, tz), day_start(end + timedelta(days=1), tz)
            clauses.append(f"(p.first_failed_at >= %(s{i})s AND p.first_failed_at < %(e{i})s)")
        ranges = " AND (" + " OR ".join(clauses) + ")"
        params["days"] = sorted(days)
        rolled_days = " AND r.day = ANY(%(days)s)"
    with connection.cursor() as cursor:
        for statement in statements or (_ROLLED_SQL, _DAILY_SQL, _TIMES_SQL, _COMPLIANCE_SQL):
            cursor.execute(statement.replace("{ranges}", ranges).replace("{rolled_days}", rolled_days), params)


def _day_runs(days: set[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) runs."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(a, b) for a, b in runs]
