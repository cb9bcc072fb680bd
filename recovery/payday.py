"""When a customer's money arrives and when they read their messages, learnt from their own history.

Pure functions (no queries): :func:`recovery.history.customer_timings` loads the
facts in bulk, :func:`infer_timing` turns them into a :class:`CustomerTiming`,
and the planner takes that as an input, next to the policy.

- **Payday.** Past payments that went through (recoveries, successful
  re-charges and pay-page payments the merchant reported) cluster on the days
  the customer's money lands. If most of them fall within a few days of the
  same day of the month (or on the same weekday, for weekly pay), that day is
  the customer's payday, and an insufficient-funds retry waits for it instead
  of the policy's paydays. With too little history, or no pattern, the
  policy's list stays in force.
- **Time of day.** The local hour at which the customer opened a message or
  paid before; a message is held back (at most a day) until that hour.

Both come with a plain-language basis the planner puts in its reason.
"""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

# Fewer past payments than this say nothing about a payday.
MIN_PAYMENTS = 2
# A day-of-month cluster: payments this many days either side of the payday (money lands, the
# customer pays that day or soon after).
SPREAD_DAYS = 2
# Share of the customer's payments that must fall in the cluster.
MIN_SHARE = 2 / 3
# Weekly pay needs more evidence: any two dates share a weekday one time in seven.
MIN_WEEKDAY_PAYMENTS = 3
# Opens and payments: at least this many, and half of them within an hour of each other.
MIN_HOUR_EVENTS = 2
# A message waits at most this long for the customer's hour.
MAX_HOLD = timedelta(hours=20)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class CustomerTiming:
    """What the planner learns from one customer's history. Empty: nothing learnt."""

    paydays: tuple[int, ...] = ()  # days of the month; 31 means the month's last day
    weekday: int | None = None  # 0 = Monday: weekly or fortnightly pay
    payday_basis: str = ""  # why, for the reason: "4 of 5 past payments between the 24th and the 26th"
    hour: int | None = None  # local hour the customer opened a message or paid
    hour_basis: str = ""

    @property
    def knows_payday(self) -> bool:
        return bool(self.paydays) or self.weekday is not None


NO_TIMING = CustomerTiming()


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _day_label(day: int) -> str:
    return "the month's last day" if day == 31 else f"the {ordinal(day)}"


def _month_day(local: datetime) -> int:
    """Day of the month, with the last three days counted from the month's end (28 Feb is like 31 Jan)."""
    last = calendar.monthrange(local.year, local.month)[1]
    return 31 - (last - local.day) if local.day > last - 3 else local.day


def _circular(a: int, b: int, size: int) -> int:
    d = abs(a - b) % size
    return min(d, size - d)


def _in_cluster(day: int, start: int) -> bool:
    return 0 <= (day - start) % 31 <= SPREAD_DAYS


def _best_cluster(days: list[int]) -> tuple[int | None, int]:
    """(first day, size) of the window of SPREAD_DAYS + 1 days holding most payments; ties: the earliest day."""
    best_day, best_count = None, 0
    for candidate in sorted(set(days)):
        # The payday is the first day of the cluster: money lands, the customer pays then or soon after.
        count = sum(1 for d in days if _in_cluster(d, candidate))
        if count > best_count:
            best_day, best_count = candidate, count
    return best_day, best_count


def _span(day: int) -> str:
    last = min(31, day + SPREAD_DAYS)
    return f"between {_day_label(day)} and {_day_label(last)}" if last != day else f"on {_day_label(day)}"


def infer_paydays(paid: list[datetime], tz: ZoneInfo) -> tuple[tuple[int, ...], int | None, str]:
    """(paydays of the month, payday weekday, basis) from the times the customer's payments went through."""
    if len(paid) < MIN_PAYMENTS:
        return (), None, ""
    local = [p.astimezone(tz) for p in paid]
    days = [_month_day(d) for d in local]
    n = len(days)
    first, first_count = _best_cluster(days)
    rest = [d for d in days if not _in_cluster(d, first)]
    second, second_count = _best_cluster(rest) if len(rest) >= MIN_PAYMENTS else (None, 0)
    clusters = [(first, first_count)]
    # Twice-a-month pay (the 1st and the 15th): a second cluster of at least two payments.
    if second is not None and second_count >= MIN_PAYMENTS and first_count >= MIN_PAYMENTS:
        clusters.append((second, second_count))
    in_clusters = sum(count for _, count in clusters)
    weekdays = Counter(d.weekday() for d in local)
    weekday, weekday_count = weekdays.most_common(1)[0]
    day_share, weekday_share = in_clusters / n, weekday_count / n
    if first_count / n < MIN_SHARE and len(clusters) == 1:
        day_share = 0.0
    if day_share >= MIN_SHARE and day_share >= weekday_share:
        clusters.sort()
        spans = " or ".join(_span(day) for day, _ in clusters)
        return tuple(day for day, _ in clusters), None, f"{in_clusters} of {n} past payments went through {spans}"
    if n >= MIN_WEEKDAY_PAYMENTS and weekday_share >= MIN_SHARE:
        return (), weekday, f"{weekday_count} of {n} past payments went through on a {WEEKDAYS[weekday]}"
    return (), None, ""


def preferred_hour(events: list[datetime], tz: ZoneInfo) -> tuple[int | None, str]:
    """(local hour, basis): when the customer opened a message or paid, if half of those times agree within an hour."""
    if len(events) < MIN_HOUR_EVENTS:
        return None, ""
    hours = [e.astimezone(tz).hour for e in events]
    # The hour with most times within an hour of it; ties go to the hour with most times exactly in it.
    best, count, _ = max(
        ((h, sum(1 for x in hours if _circular(x, h, 24) <= 1), hours.count(h)) for h in range(24)),
        key=lambda item: (item[1], item[2], -item[0]),
    )
    if count * 2 < len(hours) or count < MIN_HOUR_EVENTS:
        return None, ""
    return best, f"{count} of {len(hours)} times this customer opened a message or paid were around {best:02d}:00"


def infer_timing(*, paid: list[datetime], opened: list[datetime], tz: ZoneInfo) -> CustomerTiming:
    """Everything the planner may learn from one customer: payday from ``paid``, hour from ``paid`` and ``opened``."""
    paydays, weekday, payday_basis = infer_paydays(paid, tz)
    hour, hour_basis = preferred_hour([*paid, *opened], tz)
    if not payday_basis and hour is None:
        return NO_TIMING
    return CustomerTiming(paydays=paydays, weekday=weekday, payday_basis=payday_basis, hour=hour, hour_basis=hour_basis)


def next_weekday(when: datetime, weekday: int, at: time, tz: ZoneInfo) -> datetime:
    local = when.astimezone(tz)
    ahead = (weekday - local.weekday()) % 7
    candidate = datetime.combine(local.date() + timedelta(days=ahead), at, tzinfo=tz)
    if ahead == 0:
        return max(candidate, local)
    return candidate


def payday_for(
    when: datetime, *, timing: CustomerTiming, policy_days: list[int], at: time, tz: ZoneInfo, next_payday
) -> tuple[datetime | None, str]:
    """(the first payday on or after ``when``, how it was chosen): the customer's own, else the policy's.

    ``next_payday`` is the planner's day-of-month search (passed in: this module
    must not import the planner).
    """
    if timing.weekday is not None:
        return next_weekday(when, timing.weekday, at, tz), (
            f"this customer's payday, a {WEEKDAYS[timing.weekday]} ({timing.payday_basis})"
        )
    if timing.paydays:
        found = next_payday(when, list(timing.paydays), tz)
        label = " and ".join(_day_label(d) for d in timing.paydays)
        return found, f"this customer's payday, {label} ({timing.payday_basis})"
    found = next_payday(when, policy_days, tz)
    if found is None:
        return None, ""
    return found, f"payday {ordinal(found.astimezone(tz).day)}"


def message_time(when: datetime, *, timing: CustomerTiming, tz: ZoneInfo) -> tuple[datetime, str]:
    """Hold a message until the customer's usual hour if that comes within :data:`MAX_HOLD`; (time, note)."""
    if timing.hour is None:
        return when, ""
    local = when.astimezone(tz)
    candidate = datetime.combine(local.date(), time(timing.hour), tzinfo=tz)
    if candidate < local - timedelta(minutes=59):
        candidate += timedelta(days=1)
    if candidate <= local:  # already within the customer's hour
        return when, ""
    if candidate - local > MAX_HOLD:
        return when, ""
    return candidate, f"held until {timing.hour:02d}:00 ({timing.hour_basis})"
