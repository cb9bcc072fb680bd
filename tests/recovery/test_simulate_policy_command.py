"""``manage.py simulate_policy``: the table, JSON, tried policies, an organization's policies, bad input."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

BASELINES = ["8 retries in 14 days + 2 e-mails", "Retry on days 8/16/24 + 1 e-mail", "Daily for 14 days"]


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("simulate_policy", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_json_has_tinko_default_a_tried_policy_and_the_baselines(default_rules):
    out, err = run("--size", "40", "--seed", "2", "--json",
                   "--policy-json", '{"name": "Own paydays", "payday_alignment": true, "payday_days": []}')
    result = json.loads(out)
    assert [r["name"] for r in result["results"]] == ["Tinko default", "Own paydays", *BASELINES]
    assert result["seed"] == 2 and result["size"] == 40
    assert all(r["failures"] == 40 for r in result["results"])
    assert "40/40 failures" in err  # the progress bar


def test_same_seed_gives_the_same_figures(default_rules):
    first = json.loads(run("--size", "30", "--json", "--no-progress")[0])
    again = json.loads(run("--size", "30", "--json", "--no-progress")[0])
    assert first["results"] == again["results"]


def test_table_names_every_strategy_and_marks_the_baselines(default_rules):
    out, _ = run("--size", "20", "--no-progress", "--mix", "hard_declines")
    assert "mix hard_declines" in out
    for name in BASELINES:
        assert f"{name} *" in out


def test_an_organizations_policies_by_name(org, default_rules):
    out, _ = run("--organization", org.slug, "--policy", "Default", "--size", "20", "--json", "--no-progress")
    assert json.loads(out)["results"][0]["name"] == "Default"
    with pytest.raises(CommandError, match="has no policy named 'Nope'"):
        run("--organization", org.slug, "--policy", "Nope", "--size", "20")


@pytest.mark.parametrize("args, message", [
    (["--param", "paycheck_cover=0.5"], "unknown population parameter"),
    (["--size", "0"], "--size must be between 1 and 5000"),
    (["--policy-json", "{nope"], "--policy-json is not valid JSON"),
    (["--policy-json", '{"steps": {"fraud_or_stolen": []}}'], "Fraud declines never get"),
    (["--source", "recent"], "need --organization"),
])
def test_bad_input_is_refused_with_the_reason(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
