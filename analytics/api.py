"""The analytics API: the dashboard's numbers as JSON (``/api/v1/analytics/…``). Thin: selectors compute."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from tinko.api.serializers import ErrorSerializer

PERIOD_PARAMETERS = [
    OpenApiParameter("period", str, enum=["7d", "30d", "90d", "custom"], required=False,
                     description="The last 7, 30 or 90 days including today (default 30d), or `custom` with `start` and `end`."),
    OpenApiParameter("start", str, required=False, description="First day of a custom period, YYYY-MM-DD, in the organization's time zone."),
    OpenApiParameter("end", str, required=False, description="Last day of a custom period (inclusive), YYYY-MM-DD; at most 731 days after `start`."),
    OpenApiParameter("currency", str, required=False, description="Only this ISO 4217 currency (no conversion ever happens)."),
]

PERIOD = inline_serializer("AnalyticsPeriod", {
    "period": serializers.CharField(), "start": serializers.DateField(), "end": serializers.DateField(),
    "days": serializers.IntegerField(), "timezone": serializers.CharField(),
})
RATE = {"allow_null": True, "help_text": "A fraction from 0 to 1; null when there is nothing to divide by."}
SUMMARY_FIELDS = {
    "currency": serializers.CharField(),
    "failed_count": serializers.IntegerField(), "failed_amount": serializers.IntegerField(help_text="Minor units."),
    "recovered_count": serializers.IntegerField(), "recovered_amount": serializers.IntegerField(),
    "at_risk_count": serializers.IntegerField(help_text="Payments still being recovered (revenue at risk)."),
    "at_risk_amount": serializers.IntegerField(),
    "recovery_rate": serializers.FloatField(**RATE), "value_recovery_rate": serializers.FloatField(**RATE),
    "median_hours_to_recover": serializers.IntegerField(allow_null=True),
    "p90_hours_to_recover": serializers.IntegerField(allow_null=True),
    "held_out_count": serializers.IntegerField(help_text="Held-out payments of the currency (not in the measures above)."),
    "held_out_amount": serializers.IntegerField(), "held_out_recovered_count": serializers.IntegerField(),
    "held_out_recovered_amount": serializers.IntegerField(),
    "payments_count": serializers.IntegerField(help_text="Every payment of the period: failed_count + held_out_count."),
}
HOLDOUT = inline_serializer("AnalyticsHoldout", {
    "treatment_count": serializers.IntegerField(), "treatment_recovered": serializers.IntegerField(),
    "holdout_count": serializers.IntegerField(), "holdout_recovered": serializers.IntegerField(),
    "outside_count": serializers.IntegerField(help_text="Payments in no experiment (before it started, or no holdout)."),
    "outside_recovered": serializers.IntegerField(),
    "total_count": serializers.IntegerField(help_text="Every payment of the period: the three groups."),
    "comparison": inline_serializer("AnalyticsHoldoutComparison", {
        "treatment_rate": serializers.FloatField(), "holdout_rate": serializers.FloatField(),
        "difference": serializers.FloatField(), "ci_low": serializers.FloatField(), "ci_high": serializers.FloatField(),
        "enough_data": serializers.BooleanField(help_text="Both groups have at least min_payments payments."),
        "min_payments": serializers.IntegerField(),
        "significant": serializers.BooleanField(help_text="Enough data, and the interval excludes zero."),
    }, allow_null=True, help_text=(
        "Null until both groups have payments. 95% Newcombe hybrid score interval (from Wilson intervals) "
        "of the difference of the recovery rates."
    )),
})
COMPLIANCE = inline_serializer("AnalyticsCompliance", {
    "visa_limit": serializers.IntegerField(), "mastercard_limit": serializers.IntegerField(),
    "most_auto_attempts": serializers.IntegerField(), "mastercard_peak_24h": serializers.IntegerField(),
    "network_stops": serializers.IntegerField(), "limit_refusals": serializers.IntegerField(),
    "advice_waits": serializers.IntegerField(), "advice_waits_honoured": serializers.IntegerField(),
    "brands": serializers.ListField(child=serializers.DictField()),
})


def _filters(request):
    organization = request.auth.organization
    try:
        period = selectors.parse_period(request.query_params, organization)
        currency = selectors.parse_currency(request.query_params)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError(exc.message_dict) from None
    selectors.freshness(organization)
    return organization, period, currency


def _period(period, organization) -> dict:
    return {**period.as_dict(), "timezone": organization.timezone}


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer}


class SummaryView(APIView):
    @extend_schema(
        operation_id="analytics_summary", tags=["analytics"], parameters=PERIOD_PARAMETERS,
        summary="Recovery measures for a period",
        description=(
            "Payments that first failed in the period (days in the organization's time zone), per currency with the "
            "organization's default currency first: failed, recovered, still at risk, recovery rates by count and by "
            "value, median and 90th-percentile hours to recover. Held-out payments (incrementality experiment) are "
            "counted beside the measures (`held_out_*`) and compared in `holdout`. Figures include every change "
            "committed before the request (the `compliance` counts follow within a minute)."
        ),
        responses={200: inline_serializer("AnalyticsSummary", {
            "period": PERIOD, "currencies": inline_serializer("AnalyticsCurrencySummary", SUMMARY_FIELDS, many=True), "holdout": HOLDOUT, "compliance": COMPLIANCE,
        }), **ERRORS},
    )
    def get(self, request):
        organization, period, currency = _filters(request)
        return Response({
            "period": _period(period, organization),
            "currencies": selectors.summary(organization, period, currency=currency),
            "holdout": selectors.holdout(organization, period, currency=currency),
            "compliance": selectors.compliance(organization, period),
        })


class TimeseriesView(APIView):
    @extend_schema(
        operation_id="analytics_timeseries", tags=["analytics"],
        parameters=[*PERIOD_PARAMETERS, OpenApiParameter(
            "interval", str, enum=["day", "week"], required=False,
            description="Default: day, or week (from Monday) for periods over 120 days.")],
        summary="Failed vs recovered over time",
        description="One point per day or week of the period, empty ones included, per currency.",
        responses={200: inline_serializer("AnalyticsTimeseries", {
            "period": PERIOD, "interval": serializers.CharField(),
            "series": serializers.ListField(child=serializers.DictField(), help_text=(
                "Per currency: `{currency, points: [{start, failed_count, failed_amount, recovered_count, "
                "recovered_amount, recovery_rate}]}`.")),
        }), **ERRORS},
    )
    def get(self, request):
        organization, period, currency = _filters(request)
        try:
            data = selectors.timeseries(organization, period, currency=currency, interval=request.query_params.get("interval", ""))
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from None
        return Response({"period": _period(period, organization), **data})


class CohortsView(APIView):
    @extend_schema(
        operation_id="analytics_cohorts", tags=["analytics"], parameters=PERIOD_PARAMETERS,
        summary="Cohorts by failure week",
        description=(
            "Payments grouped by the week (from Monday) of their first failure, and the share recovered within 1, 3, "
            "7, 14 and 30 days of it; null while some payment of the week is younger than that."
        ),
        responses={200: inline_serializer("AnalyticsCohorts", {
            "period": PERIOD,
            "cohorts": serializers.ListField(child=serializers.DictField(), help_text=(
                "`{week, payments, recovered_by_day: {\"1\": rate, \"3\": …, \"30\": …}}`")),
        }), **ERRORS},
    )
    def get(self, request):
        organization, period, currency = _filters(request)
        return Response({"period": _period(period, organization),
                         "cohorts": selectors.cohorts(organization, period, currency=currency)})


class BreakdownView(APIView):
    @extend_schema(
        operation_id="analytics_breakdown", tags=["analytics"],
        parameters=[*PERIOD_PARAMETERS, OpenApiParameter(
            "by", str, enum=list(selectors.BREAKDOWNS), required=True,
            description=(
                "`category` (decline category) or `provider`: failed and recovered per group; `channel`: recovered "
                "payments by the channel and attempt number that recovered them."))],
        summary="Measures split by category, channel or provider",
        responses={200: inline_serializer("AnalyticsBreakdown", {
            "period": PERIOD, "by": serializers.CharField(),
            "rows": serializers.ListField(child=serializers.DictField()),
        }), **ERRORS},
    )
    def get(self, request):
        by = request.query_params.get("by", "")
        if by not in selectors.BREAKDOWNS:
            raise exceptions.ValidationError({"by": [f"Choose one of {', '.join(selectors.BREAKDOWNS)}."]})
        organization, period, currency = _filters(request)
        return Response({"period": _period(period, organization), "by": by,
                         "rows": selectors.breakdown(organization, period, by, currency=currency)})
