"""The console's Compare policies page: a run through the background job, its progress, its results, tenancy."""

from __future__ import annotations

import pytest

from recovery.models import RetryPolicy
from tests.console_recovery.conftest import ingest

pytestmark = pytest.mark.django_db


def start(client, org, **overrides):
    policy = RetryPolicy.objects.get(organization=org, is_default=True)
    data = {"policies": [policy.pk], "tinko_default": "on", "source": "synthetic", "mix": "subscriptions",
            "size": "60", "seed": "3", "parameters": '{"paycheck_covers": 0.6}'}
    data.update(overrides)
    return client.post("/console/policies/compare/", data)


def test_member_runs_a_comparison_and_reads_the_results(member_client, org, default_rules, run_jobs,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(member_client, org)
    assert response.status_code == 302
    run_url = response["Location"]
    run_id = run_url.split("run=")[1]
    waiting = member_client.get(f"/console/policies/compare/{run_id}/")
    assert b"<progress" in waiting.content and b'hx-trigger="every 1s"' in waiting.content

    run_jobs()

    page = member_client.get(run_url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Results: 60 failures, seed 3" in text
    for name in ("Default", "Tinko default", "8 retries in 14 days + 2 e-mails", "Retry on days 8/16/24 + 1 e-mail",
                 "Daily for 14 days"):
        assert name in text
    assert "<progress" not in text
    # The form offers the same choices again.
    form = page.context["form"]
    assert form.initial["seed"] == 3 and form.initial["size"] == 60
    assert '"paycheck_covers": 0.6' in form.initial["parameters"]
    assert "Lost or stolen card" in text and "Insufficient funds" in text  # per-category rows, in words


def test_another_organization_cannot_read_a_run(member_client, org, outsider_client, default_rules, run_jobs,
                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(member_client, org)["Location"].split("run=")[1]
    assert outsider_client.get(f"/console/policies/compare/{run_id}/").status_code == 404
    assert outsider_client.get(f"/console/policies/compare/?run={run_id}").status_code == 404


def test_bad_model_parameters_are_refused_with_the_reason(member_client, org):
    response = start(member_client, org, parameters='{"paycheck_cover": 0.6}')
    assert response.status_code == 400
    assert "unknown population parameter(s): paycheck_cover" in response.content.decode()
    response = start(member_client, org, parameters="{not json")
    assert response.status_code == 400
    assert "Not valid JSON" in response.content.decode()


def test_another_organizations_policy_cannot_be_chosen(member_client, org, other_org):
    theirs = RetryPolicy.objects.get(organization=other_org, is_default=True)
    response = start(member_client, org, policies=[theirs.pk], tinko_default="")
    assert response.status_code == 400


def test_recent_failures_replay_the_organizations_own_payments(member_client, org, default_rules, run_jobs,
                                                               django_capture_on_commit_callbacks):
    for _ in range(5):
        ingest(org)
    with django_capture_on_commit_callbacks(execute=True):
        run_url = start(member_client, org, source="recent", size="100")["Location"]
    run_jobs()
    text = member_client.get(run_url).content.decode()
    assert "Results: 5 failures, seed 3" in text


def test_recent_failures_carry_the_customers_earlier_recoveries(org, default_rules):
    from datetime import timedelta

    from django.utils import timezone

    from recovery.models import Payment
    from recovery.simulator.service import recent_failures

    earlier = ingest(org, reference="paid-before")
    paid_at = timezone.now() - timedelta(days=40)
    Payment.objects.filter(pk=earlier.pk).update(status="recovered", recovered_at=paid_at)
    ingest(org, reference="failed-now")
    records = recent_failures(org)
    assert len(records) == 2
    # The later failure knows the earlier recovery; the recovered payment does not count its own.
    (record,) = [r for r in records if r["paid_history"]]
    assert record["paid_history"] == [paid_at]
    assert record["codes"]["decline_code"] == "insufficient_funds"
