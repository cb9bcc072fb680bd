"""The README works as written for a newcomer: each local-mode command it shows runs, its facts about the
demo match what `make run` creates, its tables are whole and its links stay inside the repository.

The commands run through `make manage` exactly as the README writes them, on a temporary SQLite
database (the make variable LOCAL_DATABASE_URL) and this test run's virtualenv (VENV), never on the
developer's var/tinko.sqlite3.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MANAGE = re.compile(r'make (?:--no-print-directory )?manage ARGS="([^"]*)"')


def readme_manage_commands() -> list[str]:
    """Every `make manage ARGS="…"` the README shows, in order, once each (not the placeholder itself)."""
    return [c for c in dict.fromkeys(MANAGE.findall(README)) if "…" not in c and "<" not in c]


def _make(args: str, database: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", "manage", f"VENV={sys.prefix}", f"LOCAL_DATABASE_URL=sqlite:///{database}",
         f"ARGS={args}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def local_mode(tmp_path_factory):
    """What `make run` does before serving: migrate and seed the demo, on a temporary SQLite database."""
    database = tmp_path_factory.mktemp("readme") / "tinko.sqlite3"
    for args in ("migrate --noinput", "seed_demo"):
        done = _make(args, database)
        assert done.returncode == 0, f"make manage ARGS={args!r} failed:\n{done.stdout}\n{done.stderr}"
    with sqlite3.connect(database) as db:
        # What a newcomer finds right after `make run`, before any other command adds to it.
        (payments,) = db.execute(
            "SELECT COUNT(*) FROM payments_payment p JOIN tinko_organization o ON o.id = p.organization_id "
            "WHERE o.slug = 'demo'"
        ).fetchone()
        (completed,) = db.execute(
            "SELECT completed_at FROM onboarding_onboardingprogress g JOIN tinko_organization o "
            "ON o.id = g.organization_id WHERE o.slug = 'demo'"
        ).fetchone()
    return {"database": database, "payments": payments, "onboarding_completed": completed}


def test_the_readme_shows_the_local_commands():
    commands = readme_manage_commands()

    assert 'create_api_key demo mykey' in commands
    assert any(c.startswith("refresh_analytics") for c in commands)
    assert any(c.startswith("seed_demo") for c in commands)


@pytest.mark.parametrize("args", readme_manage_commands())
def test_each_readme_command_runs_as_shown_in_local_mode(local_mode, args):
    done = _make(args, local_mode["database"])

    assert done.returncode == 0, f'make manage ARGS="{args}" failed:\n{done.stdout}\n{done.stderr}'
    if args.startswith("create_api_key"):
        # Only the key, so KEY=$(make … manage ARGS="create_api_key …") works as the README shows.
        assert re.fullmatch(r"\S{20,}\n?", done.stdout), done.stdout


def test_the_demo_has_as_many_failed_payments_as_the_readme_says(local_mode):
    said = re.search(r"The demo merchant starts with ([\d,]+) failed\s+payments", README).group(1)

    assert int(said.replace(",", "")) == local_mode["payments"]


def test_the_demo_says_get_started_is_done(local_mode):
    assert local_mode["onboarding_completed"] is not None


def test_production_commands_exist():
    from django.core.management import get_commands

    shown = re.findall(r"`python manage\.py ([a-z_]+)", README)

    assert shown and set(shown) <= set(get_commands()), set(shown) - set(get_commands())


def test_no_blank_line_cuts_a_table():
    lines = README.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            # A table starts here: it must be a header row with its separator, not rows cut off by a blank line.
            assert i + 1 < len(lines) and re.match(r"\|\s*-{3}", lines[i + 1]), f"README line {i + 1}: {line[:60]}"


def test_links_stay_inside_the_repository():
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        assert "://" not in target, f"a link outside the repository: {target}"
        path = target.split("#")[0]
        if path:
            assert (ROOT / path).exists(), f"a link to a missing file: {target}"


def test_no_out_of_date_lines():
    for stale in ("PSP webhooks next", "e-mail for now", "six failed payments"):
        assert stale not in README
