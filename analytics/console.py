"""The console's dashboard (the home page) and its CSV exports. Thin: selectors compute."""

from __future__ import annotations

import csv

from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from analytics import selectors
from analytics.charts import trend_chart
from analytics.templatetags.analytics import money
from onboarding.models import OnboardingProgress
from tinko.console import selectors as console_selectors
from tinko.tenancy import role_required

REPORTS = ("summary", "timeseries", "cohorts", "breakdown", "holdout", "compliance")


def _filters(request):
    """(period, currency, errors by field): a bad filter falls back to the default 30 days and is reported."""
    organization = request.organization
    try:
        period = selectors.parse_period(request.GET, organization)
        currency = selectors.parse_currency(request.GET)
    except ValidationError as exc:
        return selectors.parse_period({}, organization), "", exc.message_dict
    return period, currency, {}


@require_GET
@role_required()
def home(request):
    organization = request.organization
    period, currency, errors = _filters(request)
    data = selectors.dashboard(organization, period, currency=currency)
    series = data["timeseries"]["series"]
    chart_series = next((s for s in series if s["currency"] == currency), series[0] if series else None)
    chart = trend_chart(chart_series["points"], currency=chart_series["currency"], money=money) if chart_series else None
    context = {
        "overview": console_selectors.overview(organization),
        # A new organization is pointed at the Get started wizard until every step is done or skipped.
        "onboarding_open": not OnboardingProgress.objects.filter(
            organization=organization, completed_at__isnull=False
        ).exists(),
        "analytics": data,
        "chart": chart,
        "chart_series": chart_series,
        "filters": {
            "period": request.GET.get("period", "") if not errors else "30d",
            "start": period.start.isoformat(), "end": period.end.isoformat(), "currency": currency,
        },
        "filter_errors": errors,
        "periods": [("7d", "Last 7 days"), ("30d", "Last 30 days"), ("90d", "Last 90 days"), ("custom", "Custom")],
        "export_query": _export_query(period, currency),
        "cohort_days": selectors.COHORT_DAYS,
        "currency_choices": data["currencies"] + ([currency] if currency and currency not in data["currencies"] else []),
    }
    return render(request, "console/home.html", context, status=400 if errors else 200)


def _export_query(period, currency) -> str:
    query = f"start={period.start.isoformat()}&end={period.end.isoformat()}"
    return query + (f"&currency={currency}" if currency else "")


def _rows(report: str, organization, period, currency, by: str) -> list[dict]:
    if report == "summary":
        return selectors.summary(organization, period, currency=currency)
    if report == "timeseries":
        data = selectors.timeseries(organization, period, currency=currency)
        return [{"currency": s["currency"], **p} for s in data["series"] for p in s["points"]]
    if report == "cohorts":
        return [
            {"week": c["week"], "payments": c["payments"], **{f"recovered_by_day_{d}": r for d, r in c["recovered_by_day"].items()}}
            for c in selectors.cohorts(organization, period, currency=currency)
        ]
    if report == "breakdown":
        return selectors.breakdown(organization, period, by, currency=currency)
    if report == "holdout":
        data = selectors.holdout(organization, period, currency=currency)
        comparison = data.pop("comparison") or {}
        return [{**data, **comparison}]
    data = selectors.compliance(organization, period)
    return [{**{k: v for k, v in data.items() if k != "brands"}, **b} for b in data["brands"]] or [
        {k: v for k, v in data.items() if k != "brands"}
    ]


@require_GET
@role_required()
def export(request):
    """One table of the dashboard as CSV (amounts in minor units, rates as fractions)."""
    organization = request.organization
    report = request.GET.get("report", "summary")
    by = request.GET.get("by", "category")
    try:
        if report not in REPORTS:
            raise ValidationError({"report": f"Choose one of {', '.join(REPORTS)}."})
        period = selectors.parse_period(request.GET, organization)
        currency = selectors.parse_currency(request.GET)
        if report == "breakdown" and by not in selectors.BREAKDOWNS:
            raise ValidationError({"by": f"Choose one of {', '.join(selectors.BREAKDOWNS)}."})
    except ValidationError as exc:
        text = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        return HttpResponseBadRequest(text, content_type="text/plain; charset=utf-8")
    selectors.freshness(organization)
    rows = _rows(report, organization, period, currency, by)
    name = f"tinko-{organization.slug}-{report}{'-' + by if report == 'breakdown' else ''}-{period.start}-{period.end}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    columns = list(dict.fromkeys(key for row in rows for key in row)) if rows else ["currency"]
    writer = csv.DictWriter(response, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return response
