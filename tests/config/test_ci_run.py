""".ci/run stops at once, naming the package, when a tool it needs is missing; otherwise it reaches `make test`.

The script runs from a copy of .ci/ (so the tree it works in is a scratch
directory) on a PATH holding only the tools each test gives it, with its
database and Redis numbers pointed away from the ones CI uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.ops.procs import BASE_DIR

TOOLS = ["make", "pg_isready", "psql", "redis-cli", "xgettext", "kubectl", "node", "npm", "pg_ctlcluster", "redis-server",
         "dirname", "seq", "sleep"]


def _scratch_db() -> str:
    return (urlsplit(os.environ.get("DATABASE_URL", "")).path.lstrip("/") or "tinko") + "_ci_script"


def run_ci(tmp_path: Path, tools: dict[str, str], **variables: str) -> subprocess.CompletedProcess:
    project = tmp_path / "project"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(BASE_DIR / ".ci" / "run", project / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in tools.items():
        (bin_dir / name).symlink_to(target)
    env = {
        "PATH": str(bin_dir),
        "HOME": os.environ.get("HOME", "/tmp"),
        "TINKO_CI_DB": _scratch_db(),
        "TINKO_CI_REDIS_DB": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12").rsplit("/", 1)[-1],
        "TINKO_CI_CACHE_DB": os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/13").rsplit("/", 1)[-1],
        **variables,
    }
    return subprocess.run(
        [shutil.which("bash"), str(project / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=120
    )


def real_tools(*, without: str = "") -> dict[str, str]:
    # The interpreter itself, not a version manager's shim that needs its own PATH.
    tools = {"python3": os.path.realpath(sys.executable)}
    for name in TOOLS:
        found = shutil.which(name)
        assert found, f"the test environment lacks {name}"
        tools[name] = found
    tools.pop(without, None)
    return tools


@pytest.mark.parametrize(
    ("tool", "package"),
    [
        ("python3", "Python 3.11 or newer"),
        ("make", "make"),
        ("pg_isready", "postgresql-client"),
        ("psql", "postgresql-client"),
        ("redis-cli", "redis-tools"),
        ("xgettext", "gettext"),
        ("kubectl", "kubectl"),
        ("node", "nodejs"),
        ("npm", "npm"),
    ],
)
def test_a_missing_tool_stops_the_script_naming_its_package(tmp_path, tool, package):
    result = run_ci(tmp_path, real_tools(without=tool))
    assert result.returncode == 1
    assert f"[ci] missing {tool}: install {package}" in result.stdout
    # Nothing else ran: no service was started, no database dropped.
    assert result.stdout.count("[ci]") == 1, result.stdout


def test_a_python_without_venv_is_refused_when_it_cannot_be_installed(tmp_path):
    tools = real_tools()
    fake_python = tmp_path / "python-without-venv"
    # Fails on `import venv, ensurepip`, as Debian's python3 does without python3-venv.
    fake_python.write_text("#!/bin/sh\nexit 1\n")
    fake_python.chmod(0o755)
    tools["python3"] = str(fake_python)
    result = run_ci(tmp_path, tools)  # no apt-get on this PATH
    assert result.returncode == 1
    assert "[ci] missing the venv module of python3: install python3-venv" in result.stdout


@pytest.fixture
def scratch_database():
    yield _scratch_db()
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c",
         f'DROP DATABASE IF EXISTS "{_scratch_db()}" WITH (FORCE)'],
        capture_output=True, check=True, env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
    )


def test_with_every_tool_the_script_prepares_the_database_and_runs_make_test(tmp_path, scratch_database):
    tools = real_tools()
    fake_make = tmp_path / "make-test"
    # Stands in for `make test`, whose run is the whole suite.
    fake_make.write_text('#!/bin/sh\necho "make $* with $DATABASE_URL $REDIS_URL $CACHE_URL"\n')
    fake_make.chmod(0o755)
    tools["make"] = str(fake_make)
    tools["ls"] = shutil.which("ls")
    # The browser step is not under test: point it at an executable so it installs nothing.
    result = run_ci(tmp_path, tools, CHROMIUM=str(fake_make))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"creating a fresh database {scratch_database}" in result.stdout
    assert f"make test with postgres://postgres@127.0.0.1:5432/{scratch_database} redis://127.0.0.1:6379/" in result.stdout
