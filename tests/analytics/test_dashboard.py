"""The dashboard (console home), its CSV exports and the analytics API."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.analytics.conftest import make_payment
from tests.recovery.conftest import Api

pytestmark = pytest.mark.django_db


def today_at(hour=9):
    # Noon-ish UTC today is today in Berlin too.
    return timezone.now().replace(hour=hour, minute=0).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def recent(org):
    make_payment(org, failed=today_at(), amount=2500, recovered_after=timedelta(minutes=30), attempt_sequence=1)
    make_payment(org, failed=today_at(), amount=7500, status="recovering", category="expired_card")
    make_payment(org, failed=today_at(), amount=1200, currency="USD", status="failed")


@pytest.fixture
def globex_payment(other_org):
    make_payment(other_org, failed=today_at(), amount=987654, currency="EUR")


def kpis(content):
    return re.findall(r'data-kpi="([a-z-]+)">([^<]+)<', content)


def test_home_shows_kpis_per_currency_default_first(owner_client, recent, globex_payment):
    content = owner_client.get("/console/?period=7d").content.decode()

    assert kpis(content)[:5] == [
        ("failed", "€100.00"), ("recovered", "€25.00"), ("rate", "50.0%"), ("at-risk", "€75.00"), ("median", "0 h"),
    ]
    assert kpis(content)[5:7] == [("failed", "$12.00"), ("recovered", "$0.00")]
    assert "9,876.54" not in content


def test_chart_is_readable_without_colour_and_has_its_table(owner_client, recent):
    content = owner_client.get("/console/?period=7d").content.decode()

    assert '<svg class="chart"' in content
    assert 'fill="url(#hatch)"' in content  # failed bars are hatched, recovered solid
    assert "Dashed line with square markers" in content
    assert "failed €100.00, recovered €25.00, recovery rate 50.0%" in content  # every bar has a text title
    assert "The numbers as a table" in content


def test_viewer_sees_the_dashboard(viewer_client, recent):
    response = viewer_client.get("/console/?period=30d")

    assert response.status_code == 200
    assert "Key figures" in response.content.decode()


def test_an_organization_without_data_sees_an_empty_dashboard(owner_client):
    content = owner_client.get("/console/").content.decode()

    assert 'data-empty="summary"' in content
    assert "Nothing to chart for this period." in content


def test_a_new_organization_is_pointed_at_get_started_until_it_is_done(owner_client, org):
    from onboarding.models import OnboardingProgress

    assert b"Set up recovery" in owner_client.get("/console/").content
    OnboardingProgress.objects.update_or_create(organization=org, defaults={"completed_at": timezone.now()})
    assert b"Set up recovery" not in owner_client.get("/console/").content


def test_bad_filters_answer_400_with_the_reason_and_the_default_period(owner_client, recent):
    response = owner_client.get("/console/?period=custom&start=2026-02-30&end=2026-03-01")

    assert response.status_code == 400
    content = response.content.decode()
    assert "Enter a date as YYYY-MM-DD." in content
    assert kpis(content)[0] == ("failed", "€100.00")  # the last 30 days instead


def test_the_other_organization_sees_only_its_own(outsider_client, recent, globex_payment):
    content = outsider_client.get("/console/?period=7d").content.decode()

    assert kpis(content)[0] == ("failed", "€9,876.54")
    assert "€100.00" not in content


def test_csv_export_of_the_summary(owner_client, recent, globex_payment):
    response = owner_client.get("/console/analytics/export.csv?report=summary&period=7d")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment;" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["currency"], r["failed_amount"], r["recovered_amount"], r["recovery_rate"]) for r in rows] == [
        ("EUR", "10000", "2500", "0.5"), ("USD", "1200", "0", "0.0"),
    ]


@pytest.mark.parametrize("report", ["timeseries", "cohorts", "holdout", "compliance", "breakdown"])
def test_every_table_exports_as_csv(owner_client, recent, report):
    response = owner_client.get(f"/console/analytics/export.csv?report={report}&by=provider&period=7d")

    assert response.status_code == 200
    assert len(response.content.decode().splitlines()) >= 2


@pytest.mark.parametrize("query", ["report=nope", "report=breakdown&by=color", "period=1y", "currency=EURO"])
def test_csv_export_refuses_bad_filters(owner_client, query):
    response = owner_client.get(f"/console/analytics/export.csv?{query}")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


def test_csv_export_needs_a_signed_in_member(client):
    response = client.get("/console/analytics/export.csv")

    assert response.status_code == 302


# --- API ---------------------------------------------------------------------------------------


@pytest.fixture
def api(api_key):
    return Api(api_key[1])


def test_api_summary(api, recent, globex_payment):
    response = api.get("analytics/summary", {"period": "7d"})

    assert response.status_code == 200
    body = response.json()
    assert body["period"]["days"] == 7 and body["period"]["timezone"] == "Europe/Berlin"
    assert [(c["currency"], c["failed_amount"], c["recovered_amount"]) for c in body["currencies"]] == [
        ("EUR", 10000, 2500), ("USD", 1200, 0),
    ]
    assert body["holdout"]["comparison"] is None
    assert body["compliance"]["visa_limit"] == 15


def test_api_timeseries_cohorts_and_breakdowns(api, recent):
    series = api.get("analytics/timeseries", {"period": "7d", "currency": "EUR"}).json()
    cohorts = api.get("analytics/cohorts", {"period": "7d"}).json()
    channel = api.get("analytics/breakdown", {"by": "channel", "period": "7d"}).json()
    category = api.get("analytics/breakdown", {"by": "category", "period": "7d"}).json()

    assert series["interval"] == "day" and len(series["series"][0]["points"]) == 7
    assert sum(p["failed_amount"] for p in series["series"][0]["points"]) == 10000
    assert cohorts["cohorts"][-1]["payments"] == 3
    assert [(r["channel"], r["attempt_number"], r["recovered_amount"]) for r in channel["rows"]] == [("psp", 1, 2500)]
    assert {(r["currency"], r["category"]) for r in category["rows"]} == {
        ("EUR", "insufficient_funds"), ("EUR", "expired_card"), ("USD", "insufficient_funds"),
    }


@pytest.mark.parametrize("path, params, field", [
    ("analytics/summary", {"period": "1y"}, "period"),
    ("analytics/summary", {"period": "custom", "start": "2026-01-01"}, "end"),
    ("analytics/timeseries", {"interval": "month"}, "interval"),
    ("analytics/breakdown", {"by": "country"}, "by"),
    ("analytics/breakdown", {}, "by"),
    ("analytics/cohorts", {"currency": "12"}, "currency"),
])
def test_api_refuses_bad_filters_with_the_field(api, path, params, field):
    response = api.get(path, params)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_api_needs_a_key(client):
    response = client.get("/api/v1/analytics/summary")

    assert response.status_code == 401


def test_api_key_of_another_organization_sees_only_its_own(other_org, outsider, recent, globex_payment):
    from tinko import services

    _, key = services.create_api_key(organization=other_org, name="Globex key", created_by=outsider)

    body = Api(key).get("analytics/summary", {"period": "7d"}).json()

    assert [(c["currency"], c["failed_amount"]) for c in body["currencies"]] == [("EUR", 987654)]


def test_analytics_endpoints_are_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content.decode()

    for path in ("summary", "timeseries", "cohorts", "breakdown"):
        assert f"/api/v1/analytics/{path}" in schema
