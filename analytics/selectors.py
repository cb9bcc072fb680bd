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
from analytics.rollups import current_state, refresh
from payments.models import HoldoutGroup
from recovery.models import Category
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
    combination of dimensions, not per payment).
    """

    def __init__(self, organization, period: Period, currency: str = ""):
        self.organization, self.period, self.currency = organization, period, currency

    @cached_property
    def by_day(self) -> list[dict]:
        """(day, currency, outcome, holdout_group) → payments, amount, recovered amount; every group."""
        return list(
            _base(DailyRollup, self.organization, self.period, self.currency, with_holdout=True)
            .values("day", "currency", "outcome", "holdout_group")
            .annotate(n=Sum("payments"), amount=Sum("amount"), recovered=Sum("recovered_amount")).order_by()
        )

    @cached_property
    def by_dimension(self) -> list[dict]:
        """(currency, category, provider, outcome, channel, attempt number) → sums; held-out payments left out."""
        return list(
            _base(DailyRollup, self.organization, self.period, self.currency)
            .values("currency", "category", "provider", "outcome", "channel", "attempt_number")
            .annotate(n=Sum("payments"), amount=Sum("amount"), recovered=Sum("recovered_amount")).order_by()
        )

    @cached_property
    def recovery_times(self) -> list[dict]:
        """(failure week from Monday, currency, hours bucket) → recovered payments; held-out payments left out."""
        return list(
            _base(RecoveryTimeRollup, self.organization, self.period, self.currency)
            .annotate(week=TruncWeek("day")).values("week", "currency", "hours")
            .annotate(n=Sum("payments")).order_by()
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


def summary(organization, period: Period, *, currency: str = "", facts: Facts | None = None) -> list[dict]:
    """Per currency: failed, recovered, open (revenue at risk), recovery rates, time to recover."""
    facts = facts or Facts(organization, period, currency)
    by_currency: dict[str, dict] = {}
    for row in facts.by_day:
        if row["holdout_group"] == HoldoutGroup.HOLDOUT:
            continue
        m = by_currency.setdefault(row["currency"], {
            "currency": row["currency"], "failed_count": 0, "failed_amount": 0, "recovered_count": 0,
            "recovered_amount": 0, "at_risk_count": 0, "at_risk_amount": 0,
        })
        m["failed_count"] += row["n"]
        m["failed_amount"] += row["amount"]
        if row["outcome"] == "recovered":
            m["recovered_count"] += row["n"]
            m["recovered_amount"] += row["recovered"]
        elif row["outcome"] == "open":
            m["at_risk_count"] += row["n"]
            m["at_risk_amount"] += row["amount"]
    counts: dict[str, dict[int, int]] = {}
    for row in facts.recovery_times:
        per_hour = counts.setdefault(row["currency"], {})
        per_hour[row["hours"]] = per_hour.get(row["hours"], 0) + row["n"]
    histograms = {code: sorted(per_hour.items()) for code, per_hour in counts.items()}
    result = []
    for code in ordered_currencies(organization, by_currency):
        m = by_currency[code]
        m["recovery_rate"] = _rate(m["recovered_count"], m["failed_count"])
        m["value_recovery_rate"] = _rate(m["recovered_amount"], m["failed_amount"])
        m["median_hours_to_recover"] = nearest_rank(histograms.get(code, []), 0.5)
        m["p90_hours_to_recover"] = nearest_rank(histograms.get(code, []), 0.9)
        result.append(m)
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


def holdout_interval(*, treated: int, treated_recovered: int, held_out: int, held_out_recovered: int) -> dict | None:
    """Recovery rate with Tinko vs without, their difference and its 95% confidence interval.

    The normal-approximation (Wald) interval for a difference of two
    independent proportions: d ± z·sqrt(p₁(1−p₁)/n₁ + p₂(1−p₂)/n₂).
    """
    if not treated or not held_out:
        return None
    p1, p2 = treated_recovered / treated, held_out_recovered / held_out
    diff = p1 - p2
    half = Z95 * math.sqrt(p1 * (1 - p1) / treated + p2 * (1 - p2) / held_out)
    return {
        "treatment_rate": round(p1, 4), "holdout_rate": round(p2, 4), "difference": round(diff, 4),
        "ci_low": round(diff - half, 4), "ci_high": round(diff + half, 4),
        # The interval excludes zero: the difference is unlikely to be chance.
        "significant": (diff - half) > 0 or (diff + half) < 0,
    }


def holdout(organization, period: Period, *, currency: str = "", facts: Facts | None = None) -> dict:
    """Payments of the period that took part in an experiment, by group, and the comparison."""
    facts = facts or Facts(organization, period, currency)
    counts = {HoldoutGroup.TREATMENT: [0, 0], HoldoutGroup.HOLDOUT: [0, 0]}
    for row in facts.by_day:
        if row["holdout_group"] not in counts:
            continue
        c = counts[row["holdout_group"]]
        c[0] += row["n"]
        if row["outcome"] == "recovered":
            c[1] += row["n"]
    (n1, r1), (n2, r2) = counts[HoldoutGroup.TREATMENT], counts[HoldoutGroup.HOLDOUT]
    return {
        "treatment_count": n1, "treatment_recovered": r1, "holdout_count": n2, "holdout_recovered": r2,
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


# Dashboards and API reads re-roll what changed when the rollups are older than this;
# the minute job keeps them fresher than that on a busy system.
FRESH_ENOUGH = timedelta(seconds=60)


def freshness(organization) -> dict:
    """When the rollups were last brought up to date, and whether they match the organization's time zone."""
    refresh(organization, max_age=FRESH_ENOUGH, inline=True)
    state = current_state(organization)
    return {
        "refreshed_at": state.refreshed_at if state else None,
        "stale_timezone": bool(state and state.refreshed_at and state.timezone != organization.timezone),
        "pending": not (state and state.refreshed_at),
    }


def dashboard(organization, period: Period, *, currency: str = "") -> dict:
    """Everything the dashboard page shows, after bringing the rollups up to date (at most a minute old)."""
    fresh = freshness(organization)
    facts = Facts(organization, period, currency)
    return {
        "freshness": fresh,
        "period": period,
        "summary": summary(organization, period, currency=currency, facts=facts),
        "timeseries": timeseries(organization, period, currency=currency, facts=facts),
        "cohorts": cohorts(organization, period, currency=currency, facts=facts),
        "breakdowns": {by: breakdown(organization, period, by, currency=currency, facts=facts) for by in BREAKDOWNS},
        "holdout": holdout(organization, period, currency=currency, facts=facts),
        "compliance": compliance(organization, period, facts=facts),
    }
