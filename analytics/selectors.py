"""The numbers on the dashboard and in the analytics API, read from the daily rollups.

Periods are whole days in the organization's time zone; every money figure is
per currency (no conversion), the organization's default currency first.
Held-out payments (the holdout group of an incrementality experiment) get no
recovery actions, so they are left out of every measure except
:func:`holdout`, which compares them with the payments Tinko worked on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db.models import Max, Q, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from analytics.models import ComplianceRollup, DailyRollup, RecoveryTimeRollup
from analytics.rollups import LIVE_MARGIN, current_state, refresh
from recovery.models import Category, HoldoutGroup
from recovery.planner import MASTERCARD_LIMIT, VISA_LIMIT

PERIODS = {"7d": 7, "30d": 30, "90d": 90}
MAX_DAYS = 731
# Longer ranges are charted by week.
WEEKLY_AFTER_DAYS = 120
COHORT_DAYS = (1, 3, 7, 14, 30)
BREAKDOWNS = ("category", "channel", "provider")
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    name: str  # 7d | 30d | 90d | custom

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def as_dict(self) -> dict:
        return {"period": self.name, "start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days}


def today_for(organization) -> date:
    return timezone.now().astimezone(ZoneInfo(organization.timezone)).date()


def parse_period(params, organization, *, today: date | None = None) -> Period:
    """A Period from ``period`` (7d, 30d, 90d; default 30d) or ``start`` and ``end`` (YYYY-MM-DD, inclusive).

    Raises ValidationError (per field) for anything else.
    """
    today = today or today_for(organization)
    start_text, end_text = (params.get("start") or "").strip(), (params.get("end") or "").strip()
    name = (params.get("period") or "").strip() or ("custom" if start_text or end_text else "30d")
    if name in PERIODS:
        if start_text or end_text:
            raise ValidationError({"period": f"Give either period={name} or start and end, not both."})
        return Period(today - timedelta(days=PERIODS[name] - 1), today, name)
    if name != "custom":
        raise ValidationError({"period": "Choose 7d, 30d, 90d or custom (with start and end)."})
    errors = {}
    parsed = {}
    for field, text in (("start", start_text), ("end", end_text)):
        if not text:
            errors[field] = "Required for a custom period (YYYY-MM-DD)."
            continue
        try:
            parsed[field] = date.fromisoformat(text)
        except ValueError:
            errors[field] = "Enter a date as YYYY-MM-DD."
    if errors:
        raise ValidationError(errors)
    start, end = parsed["start"], parsed["end"]
    if end < start:
        raise ValidationError({"end": "The end must not be before the start."})
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationError({"end": f"A period may span at most {MAX_DAYS} days."})
    return Period(start, end, "custom")


def parse_currency(params) -> str:
    currency = (params.get("currency") or "").strip().upper()
    if currency and (len(currency) != 3 or not currency.isalpha()):
        raise ValidationError({"currency": "Enter an ISO 4217 currency code, e.g. EUR."})
    return currency


def ordered_currencies(organization, currencies) -> list[str]:
    default = organization.default_currency
    return sorted(set(currencies), key=lambda c: (c != default, c))


def _rate(part, whole) -> float | None:
    return round(part / whole, 4) if whole else None


def _base(model, organization, period: Period, currency: str = "", *, with_holdout: bool = False):
    rows = model.objects.filter(organization=organization, day__gte=period.start, day__lte=period.end)
    if currency and model is not ComplianceRollup:
        rows = rows.filter(currency=currency)
    if not with_holdout and model is not ComplianceRollup:
        rows = rows.exclude(holdout_group=HoldoutGroup.HOLDOUT)
    return rows


def nearest_rank(histogram: list[tuple[int, int]], p: float) -> int | None:
    """The p-th percentile (nearest rank) of values given as sorted (value, count) pairs."""
    total = sum(n for _, n in histogram)
    if not total:
        return None
    rank = max(1, math.ceil(p * total))
    seen = 0
    for value, n in histogram:
        seen += n
        if seen >= rank:
            return value
    return histogram[-1][0]


class Facts:
    """The few grouped reads of the rollups that every measure of a period is computed from.

    The dashboard shares one instance between its panels: four queries in all,
    whatever the number of payments (the rollups hold a row per day and
    combination of dimensions, not per payment). Groups are sums of rows and
    those whose payments sum to nothing are left out: a page view's difference
    rows (analytics/rollups.py) can empty a group a re-roll would not have.
    """

    def __init__(self, organization, period: Period, currency: str = ""):
        self.organization, self.period, self.currency = organization, period, currency

    @cached_property
    def by_day_every_currency(self) -> list[dict]:
        """(day, currency, outcome, holdout_group) → payments, amount, recovered amount; every group and currency."""
        return list(
            _base(DailyRollup, self.organization, self.period, with_holdout=True)
            .values("day", "currency", "outcome", "holdout_group")
            .annotate(n=Sum("payments"), amount=Sum("amount"), recovered=Sum("recovered_amount")).filter(n__gt=0).order_by()
        )

    @cached_property
    def by_day(self) -> list[dict]:
        """:attr:`by_day_every_currency` in the chosen currency (all when none is chosen)."""
        if not self.currency:
            return self.by_day_every_currency
        return [row for row in self.by_day_every_currency if row["currency"] == self.currency]

    @cached_property
    def currencies(self) -> list[str]:
        """The currencies of the period's payments, the organization's default first (the currency filter's choices)."""
        return ordered_currencies(self.organization, {row["currency"] for row in self.by_day_every_currency})

    @cached_property
    def by_dimension(self) -> list[dict]:
        """(currency, category, provider, outcome, channel, attempt number) → sums; held-out payments left out."""
        return list(
            _base(DailyRollup, self.organization, self.period, self.currency)
            .values("currency", "category", "provider", "outcome", "channel", "attempt_number")
            .annotate(n=Sum("payments"), amount=Sum("amount"), recovered=Sum("recovered_amount")).filter(n__gt=0).order_by()
        )

    @cached_property
    def recovery_times(self) -> list[dict]:
        """(failure week from Monday, currency, hours bucket) → recovered payments; held-out payments left out."""
        return list(
            _base(RecoveryTimeRollup, self.organization, self.period, self.currency)
            .annotate(week=TruncWeek("day")).values("week", "currency", "hours")
            .annotate(n=Sum("payments")).filter(n__gt=0).order_by()
        )

    @cached_property
    def network(self) -> list[dict]:
        """Per card brand: the compliance meter's maxima and sums."""
        return list(
            _base(ComplianceRollup, self.organization, self.period).values("brand").annotate(
                most=Max("auto_attempts"), peak=Max("peak_24h"),
                retried=Sum("payments", filter=Q(auto_attempts__gt=0)),
                at_limit=Sum("payments", filter=Q(auto_attempts__gte=VISA_LIMIT)),
                stops=Sum("network_stops"), refusals=Sum("limit_refusals"), waits=Sum("advice_waits"),
                honoured=Sum("advice_waits_honoured"),
            ).order_by()
        )


def _week_date(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _currency_totals(rows) -> dict[str, dict]:
    """Per currency from by_day rows: the payments Tinko worked on, and the held-out ones beside them."""
    by_currency: dict[str, dict] = {}
    for row in rows:
        m = by_currency.setdefault(row["currency"], {
            "currency": row["currency"], "failed_count": 0, "failed_amount": 0, "recovered_count": 0,
            "recovered_amount": 0, "at_risk_count": 0, "at_risk_amount": 0,
            "held_out_count": 0, "held_out_amount": 0, "held_out_recovered_count": 0, "held_out_recovered_amount": 0,
        })
        if row["holdout_group"] == HoldoutGroup.HOLDOUT:
            m["held_out_count"] += row["n"]
            m["held_out_amount"] += row["amount"]
            if row["outcome"] == "recovered":
                m["held_out_recovered_count"] += row["n"]
                m["held_out_recovered_amount"] += row["recovered"]
            continue
        m["failed_count"] += row["n"]
        m["failed_amount"] += row["amount"]
        if row["outcome"] == "recovered":
            m["recovered_count"] += row["n"]
            m["recovered_amount"] += row["recovered"]
        elif row["outcome"] == "open":
            m["at_risk_count"] += row["n"]
            m["at_risk_amount"] += row["amount"]
    for m in by_currency.values():
        m["payments_count"] = m["failed_count"] + m["held_out_count"]
        m["recovery_rate"] = _rate(m["recovered_count"], m["failed_count"])
        m["value_recovery_rate"] = _rate(m["recovered_amount"], m["failed_amount"])
    return by_currency


def summary(organization, period: Period, *, currency: str = "", facts: Facts | None = None) -> list[dict]:
    """Per currency: failed, recovered, open (revenue at risk), recovery rates, time to recover.

    The measures count the payments Tinko worked on; ``held_out_*`` count the
    period's held-out payments of the currency beside them, so
    ``payments_count`` (both) is every payment that first failed in the period.
    """
    facts = facts or Facts(organization, period, currency)
    by_currency = _currency_totals(facts.by_day)
    counts: dict[str, dict[int, int]] = {}
    for row in facts.recovery_times:
        per_hour = counts.setdefault(row["currency"], {})
        per_hour[row["hours"]] = per_hour.get(row["hours"], 0) + row["n"]
    histograms = {code: sorted(per_hour.items()) for code, per_hour in counts.items()}
    result = []
    for code in ordered_currencies(organization, by_currency):
        m = by_currency[code]
        m["median_hours_to_recover"] = nearest_rank(histograms.get(code, []), 0.5)
        m["p90_hours_to_recover"] = nearest_rank(histograms.get(code, []), 0.9)
        result.append(m)
    return result


def previous_period(period: Period) -> Period:
    """The same number of days just before ``period`` (what its deltas compare with)."""
    return Period(period.start - timedelta(days=period.days), period.start - timedelta(days=1), "previous")


def _change(now, before) -> float | None:
    """Relative change, None when there was nothing before to compare with."""
    if now is None or before is None or not before:
        return None
    return round((now - before) / before, 4)


CHANGES = ("failed_amount", "recovered_amount", "at_risk_amount", "recovery_rate")


def deltas(organization, period: Period, current: list[dict], *, currency: str = "") -> dict[str, dict]:
    """Per currency: the key figures of the previous period of the same length, and the changes from it.

    Amounts and counts change relatively (0.25: a quarter more); the recovery
    rate changes in points (0.05: five percentage points).
    """
    before = _currency_totals(Facts(organization, previous_period(period), currency).by_day)
    result = {}
    for m in current:
        p = before.get(m["currency"])
        if p is None:
            result[m["currency"]] = dict.fromkeys(("previous", *CHANGES))
            continue
        rate_change = None
        if m["recovery_rate"] is not None and p["recovery_rate"] is not None:
            rate_change = round(m["recovery_rate"] - p["recovery_rate"], 4)
        result[m["currency"]] = {
            "previous": p,
            "failed_amount": _change(m["failed_amount"], p["failed_amount"]),
            "recovered_amount": _change(m["recovered_amount"], p["recovered_amount"]),
            "at_risk_amount": _change(m["at_risk_amount"], p["at_risk_amount"]),
            "recovery_rate": rate_change,
        }
    return result


def breakdown(organization, period: Period, by: str, *, currency: str = "", facts: Facts | None = None) -> list[dict]:
    """Per currency and category / provider (failed and recovered), or channel and attempt number (recovered)."""
    if by not in BREAKDOWNS:
        raise ValidationError({"by": f"Choose one of {', '.join(BREAKDOWNS)}."})
    facts = facts or Facts(organization, period, currency)
    if by == "channel":
        recovered: dict[tuple, list[int]] = {}
        totals: dict[str, list[int]] = {}
        for row in facts.by_dimension:
            if row["outcome"] != "recovered":
                continue
            g = recovered.setdefault((row["currency"], row["channel"], row["attempt_number"]), [0, 0])
            g[0] += row["n"]
            g[1] += row["recovered"]
            t = totals.setdefault(row["currency"], [0, 0])
            t[0] += row["n"]
            t[1] += row["recovered"]
        result = [
            {
                "currency": code, "channel": channel, "attempt_number": number or None,
                "recovered_count": n, "recovered_amount": amount,
                "share_of_recovered": _rate(n, totals[code][0]),
                "share_of_recovered_value": _rate(amount, totals[code][1]),
            }
            for (code, channel, number), (n, amount) in recovered.items()
        ]
        order = ordered_currencies(organization, totals)
        result.sort(key=lambda r: (order.index(r["currency"]), -r["recovered_amount"], r["channel"], r["attempt_number"] or 0))
        return result
    groups: dict[tuple[str, str], dict] = {}
    for row in facts.by_dimension:
        g = groups.setdefault((row["currency"], row[by]), {
            "currency": row["currency"], by: row[by], "failed_count": 0, "failed_amount": 0,
            "recovered_count": 0, "recovered_amount": 0,
        })
        g["failed_count"] += row["n"]
        g["failed_amount"] += row["amount"]
        if row["outcome"] == "recovered":
            g["recovered_count"] += row["n"]
            g["recovered_amount"] += row["recovered"]
    for g in groups.values():
        g["recovery_rate"] = _rate(g["recovered_count"], g["failed_count"])
        g["value_recovery_rate"] = _rate(g["recovered_amount"], g["failed_amount"])
        if by == "category":
            g["label"] = Category(g["category"]).label if g["category"] in Category.values else g["category"]
    order = ordered_currencies(organization, {c for c, _ in groups})
    return sorted(groups.values(), key=lambda g: (order.index(g["currency"]), -g["failed_amount"], g[by]))


def timeseries(organization, period: Period, *, currency: str = "", interval: str = "", facts: Facts | None = None) -> dict:
    """Failed vs recovered per day (per week, from Monday, for ranges over WEEKLY_AFTER_DAYS days), per currency.

    Every bucket of the period is present, empty ones with zeros.
    """
    interval = interval or ("week" if period.days > WEEKLY_AFTER_DAYS else "day")
    if interval not in ("day", "week"):
        raise ValidationError({"interval": "Choose day or week."})
    facts = facts or Facts(organization, period, currency)
    rows = [row for row in facts.by_day if row["holdout_group"] != HoldoutGroup.HOLDOUT]

    def bucket(day: date) -> date:
        return max(period.start, day - timedelta(days=day.weekday())) if interval == "week" else day

    starts = []
    day = period.start
    while day <= period.end:
        if not starts or bucket(day) != starts[-1]:
            starts.append(bucket(day))
        day += timedelta(days=1)
    series: dict[str, dict[date, dict]] = {}
    for row in rows:
        points = series.setdefault(row["currency"], {})
        p = points.setdefault(bucket(row["day"]), [0, 0, 0, 0])
        p[0] += row["n"]
        p[1] += row["amount"]
        if row["outcome"] == "recovered":
            p[2] += row["n"]
            p[3] += row["recovered"]
    result = []
    for code in ordered_currencies(organization, series):
        points = []
        for start in starts:
            failed_count, failed_amount, recovered_count, recovered_amount = series[code].get(start, [0, 0, 0, 0])
            points.append({
                "start": start.isoformat(), "failed_count": failed_count, "failed_amount": failed_amount,
                "recovered_count": recovered_count, "recovered_amount": recovered_amount,
                "recovery_rate": _rate(recovered_count, failed_count),
            })
        result.append({"currency": code, "points": points})
    return {"interval": interval, "series": result}


def cohorts(organization, period: Period, *, currency: str = "", today: date | None = None,
            facts: Facts | None = None) -> list[dict]:
    """Payments by failure week (Monday), and the share recovered within 1/3/7/14/30 days of the first failure.

    A share is None until every payment of the week is that old.
    """
    today = today or today_for(organization)
    facts = facts or Facts(organization, period, currency)

    def week(day: date) -> date:
        return day - timedelta(days=day.weekday())

    totals: dict[date, int] = {}
    for row in facts.by_day:
        if row["holdout_group"] != HoldoutGroup.HOLDOUT:
            totals[week(row["day"])] = totals.get(week(row["day"]), 0) + row["n"]
    within: dict[date, dict[int, int]] = {}
    for row in facts.recovery_times:
        counts = within.setdefault(_week_date(row["week"]), dict.fromkeys(COHORT_DAYS, 0))
        for days in COHORT_DAYS:
            if row["hours"] < days * 24:
                counts[days] += row["n"]
    result = []
    for start in sorted(totals):
        last_day = min(start + timedelta(days=6), period.end)
        age = (today - last_day).days
        counts = within.get(start, dict.fromkeys(COHORT_DAYS, 0))
        result.append({
            "week": start.isoformat(),
            "payments": totals[start],
            "recovered_by_day": {
                str(days): (_rate(counts[days], totals[start]) if age >= days else None) for days in COHORT_DAYS
            },
        })
    return result


# Below this many payments in either group the dashboard says "not enough data yet" instead of
# reading a difference: the interval is valid, but too wide to tell anything.
HOLDOUT_MIN_PAYMENTS = 30


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (valid at small n and at 0 or n successes)."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def holdout_interval(*, treated: int, treated_recovered: int, held_out: int, held_out_recovered: int) -> dict | None:
    """Recovery rate with Tinko vs without, their difference and its 95% confidence interval.

    Newcombe's hybrid score interval for a difference of two independent
    proportions (Newcombe 1998, method 10), built from each group's Wilson
    interval: unlike the normal (Wald) interval it keeps its coverage at a
    few dozen payments and at rates near 0 or 1. ``enough_data`` is False
    below HOLDOUT_MIN_PAYMENTS in either group, and then nothing is called
    significant.
    """
    if not treated or not held_out:
        return None
    p1, p2 = treated_recovered / treated, held_out_recovered / held_out
    l1, u1 = wilson_interval(treated_recovered, treated)
    l2, u2 = wilson_interval(held_out_recovered, held_out)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    enough = min(treated, held_out) >= HOLDOUT_MIN_PAYMENTS
    return {
        "treatment_rate": round(p1, 4), "holdout_rate": round(p2, 4), "difference": round(diff, 4),
        "ci_low": round(low, 4), "ci_high": round(high, 4),
        "enough_data": enough, "min_payments": HOLDOUT_MIN_PAYMENTS,
        # The interval excludes zero: the difference is unlikely to be chance.
        "significant": enough and (low > 0 or high < 0),
    }


def holdout(organization, period: Period, *, currency: str = "", facts: Facts | None = None) -> dict:
    """Payments of the period by experiment group, and the comparison of the two groups.

    ``outside_*`` counts the payments that were in no experiment (reported
    before it started, or under a policy without a holdout), so the three
    groups add up to every payment of the period, as the key figures do.
    """
    facts = facts or Facts(organization, period, currency)
    counts = {HoldoutGroup.TREATMENT: [0, 0], HoldoutGroup.HOLDOUT: [0, 0], "": [0, 0]}
    for row in facts.by_day:
        c = counts.get(row["holdout_group"], counts[""])
        c[0] += row["n"]
        if row["outcome"] == "recovered":
            c[1] += row["n"]
    (n1, r1), (n2, r2), (n0, r0) = counts[HoldoutGroup.TREATMENT], counts[HoldoutGroup.HOLDOUT], counts[""]
    return {
        "treatment_count": n1, "treatment_recovered": r1, "holdout_count": n2, "holdout_recovered": r2,
        "outside_count": n0, "outside_recovered": r0, "total_count": n0 + n1 + n2,
        "comparison": holdout_interval(treated=n1, treated_recovered=r1, held_out=n2, held_out_recovered=r2),
    }


def compliance(organization, period: Period, *, facts: Facts | None = None) -> dict:
    """Automatic reattempts per card against the Visa and Mastercard limits; refusals; advice codes honoured."""
    facts = facts or Facts(organization, period)
    order = ("visa", "mastercard", "other")
    rows = sorted(facts.network, key=lambda r: order.index(r["brand"]) if r["brand"] in order else len(order))
    brands = [
        {"brand": r["brand"], "payments_retried": r["retried"] or 0, "most_auto_attempts": r["most"] or 0,
         "peak_24h": r["peak"] or 0, "at_visa_limit": r["at_limit"] or 0}
        for r in rows
    ]
    mastercard = next((b for b in brands if b["brand"] == "mastercard"), {})
    return {
        "visa_limit": VISA_LIMIT,
        "mastercard_limit": MASTERCARD_LIMIT,
        "most_auto_attempts": max((b["most_auto_attempts"] for b in brands), default=0),
        "mastercard_peak_24h": mastercard.get("peak_24h", 0),
        "brands": brands,
        "network_stops": sum(r["stops"] or 0 for r in rows),
        "limit_refusals": sum(r["refusals"] or 0 for r in rows),
        "advice_waits": sum(r["waits"] or 0 for r in rows),
        "advice_waits_honoured": sum(r["honoured"] or 0 for r in rows),
    }


def freshness(organization) -> dict:
    """Bring the rollups up to date with every change committed so far; say how current they are.

    A page view re-rolls the failure days of the payments changed since about
    the last refresh (analytics.rollups.LIVE_MARGIN), so a failure or a
    recovery is in the figures of the next view. ``updating``: another refresh
    of the organization held the lock (the minute job, or a concurrent view),
    and the figures are those of ``refreshed_at``, which the page says.
    """
    done = refresh(organization, inline=True, margin=LIVE_MARGIN, live=True)
    state = current_state(organization)
    rolled = bool(state and state.refreshed_at)
    stale_timezone = bool(rolled and state.timezone != organization.timezone)
    return {
        "refreshed_at": state.refreshed_at if state else None,
        "stale_timezone": stale_timezone,
        "pending": not rolled,
        "updating": done is None and rolled and not stale_timezone,
    }


def dashboard(organization, period: Period, *, currency: str = "") -> dict:
    """Everything the dashboard page shows, after bringing the rollups up to date (analytics.selectors.freshness)."""
    fresh = freshness(organization)
    facts = Facts(organization, period, currency)
    key_figures = summary(organization, period, currency=currency, facts=facts)
    changes = deltas(organization, period, key_figures, currency=currency)
    for m in key_figures:
        m["change"] = changes[m["currency"]]
    return {
        "freshness": fresh,
        "period": period,
        "previous_period": previous_period(period),
        "summary": key_figures,
        "timeseries": timeseries(organization, period, currency=currency, facts=facts),
        "cohorts": cohorts(organization, period, currency=currency, facts=facts),
        "breakdowns": {by: breakdown(organization, period, by, currency=currency, facts=facts) for by in BREAKDOWNS},
        "holdout": holdout(organization, period, currency=currency, facts=facts),
        "compliance": compliance(organization, period, facts=facts),
        "currencies": ordered_currencies(organization, {organization.default_currency, *facts.currencies}),
    }
