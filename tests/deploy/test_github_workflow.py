""".github/workflows/ci.yml: valid for GitHub Actions, and it runs .ci/run with the services .ci/run expects."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from tests.ops.procs import BASE_DIR

WORKFLOW = BASE_DIR / ".github" / "workflows" / "ci.yml"


def validate(path) -> subprocess.CompletedProcess:
    # The schema ships inside check-jsonschema: nothing is fetched.
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def test_the_workflow_validates_against_the_github_actions_schema():
    result = validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "ci.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    assert validate(broken).returncode == 1


def test_the_workflow_runs_ci_run_with_postgresql_and_redis_where_it_looks_for_them():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key "on" as True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    steps = [step.get("run", "") for step in job["steps"]]
    assert steps[-1] == "bash .ci/run"
    script = (BASE_DIR / ".ci" / "run").read_text()
    pg_port = re.search(r"^PG_PORT=(\d+)$", script, re.M).group(1)
    redis_port = re.search(r"^REDIS_PORT=(\d+)$", script, re.M).group(1)
    services = job["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert f"{pg_port}:5432" in services["postgres"]["ports"]
    assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert services["redis"]["image"].startswith("redis:")
    assert f"{redis_port}:6379" in services["redis"]["ports"]
    versions = {step["uses"].split("@")[0]: step.get("with", {}) for step in job["steps"] if "uses" in step}
    assert tuple(map(int, versions["actions/setup-python"]["python-version"].split("."))) >= (3, 11)
    assert int(versions["actions/setup-node"]["node-version"]) >= 20
