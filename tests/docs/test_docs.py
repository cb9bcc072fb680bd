"""The documentation: Mermaid diagrams parse, the data model is current, links stay inside the repository.

Diagrams are parsed by Mermaid itself, in Node (tools/mermaid-check, installed by
`make test` from its package-lock.json).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from urllib.parse import unquote

import pytest
from django.core.management import CommandError, call_command

from tests.ops.procs import BASE_DIR

CHECKER = BASE_DIR / "tools" / "mermaid-check" / "check.mjs"
DOCS = sorted((BASE_DIR / "docs").glob("*.md"))
MARKDOWN = [BASE_DIR / "README.md", *DOCS, BASE_DIR / "deploy" / "kubernetes" / "README.md"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def check_mermaid(*paths) -> tuple[int, list[dict]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to parse the docs' Mermaid diagrams: install Debian's nodejs")
    if not (CHECKER.parent / "node_modules" / "mermaid").is_dir():
        pytest.fail("tools/mermaid-check has no node_modules: `make test` installs them (npm ci)")
    result = subprocess.run([node, str(CHECKER), *map(str, paths)], capture_output=True, text=True, timeout=120,
                            cwd=BASE_DIR)
    assert not result.stderr.strip() or result.returncode, result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def test_every_mermaid_diagram_in_the_docs_parses():
    code, diagrams = check_mermaid(*MARKDOWN)
    failures = [d for d in diagrams if not d["ok"]]
    assert code == 0 and not failures, failures
    by_file: dict[str, list[str]] = {}
    for diagram in diagrams:
        by_file.setdefault(diagram["file"].rsplit("/", 1)[-1], []).append(diagram["type"])
    # System context and deployment topology; ingestion → plan → run, webhook → inbox → recovery, the pay page.
    assert by_file["architecture.md"].count("flowchart-v2") >= 2
    assert by_file["architecture.md"].count("sequence") >= 3
    assert set(by_file["data-model.md"]) == {"er"} and len(by_file["data-model.md"]) >= 5


def test_the_checker_rejects_a_broken_diagram(tmp_path):
    page = tmp_path / "broken.md"
    page.write_text("# Broken\n\n```mermaid\nsequenceDiagram\n    Merchant->>: no receiver\n```\n\n"
                    "```mermaid\nflowchart LR\n    a[\"ok\"] --> b\n```\n")
    code, diagrams = check_mermaid(page)
    assert code == 1
    assert [(d["line"], d["ok"]) for d in diagrams] == [(3, False), (8, True)]  # the lines of their fences
    assert "Parse error" in diagrams[0]["error"]


@pytest.mark.django_db
def test_the_committed_data_model_is_what_the_models_say():
    try:
        call_command("er_diagram", "--check")
    except CommandError as exc:
        pytest.fail(f"{exc} (then commit docs/data-model.md)")


@pytest.mark.django_db
def test_a_stale_data_model_is_refused(tmp_path):
    stale = tmp_path / "data-model.md"
    call_command("er_diagram", "--output", str(stale))
    call_command("er_diagram", "--check", "--output", str(stale))
    stale.write_text(stale.read_text().replace("bigint amount", "bigint amount_in_cents", 1))
    with pytest.raises(CommandError, match="out of date: run python manage.py er_diagram"):
        call_command("er_diagram", "--check", "--output", str(stale))


def test_the_data_model_shows_every_model_of_the_project():
    from django.apps import apps

    text = (BASE_DIR / "docs" / "data-model.md").read_text()
    for label in ("tinko.Organization", "recovery.Payment", "recovery.RecoveryAttempt", "recovery.FailureEvent",
                  "payments.WebhookMessage", "notifications.Notification"):
        model = apps.get_model(label)
        assert f"    {model._meta.app_label}_{model.__name__} {{" in text, label


def _anchors(path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for line in path.read_text().splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower().replace("`", "")).replace(" ", "-")
            anchors.add(slug)
    return anchors


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_every_link_resolves_inside_the_repository(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # links in code blocks are not links
    links = LINK.findall(text)
    assert links or page != BASE_DIR / "README.md"
    for target in links:
        assert "://" not in target and not target.startswith(("//", "mailto:")), f"{page.name}: {target} leaves the repository"
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
        assert resolved.is_relative_to(BASE_DIR), f"{page.name}: {target} points outside the repository"
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: {target}: no such heading"


def test_the_readme_links_the_architecture_docs():
    readme = (BASE_DIR / "README.md").read_text()
    for doc in ("docs/architecture.md", "docs/data-model.md", "docs/operations.md", "docs/scaling.md",
                "deploy/kubernetes/README.md"):
        assert f"]({doc}" in readme, doc


def test_nothing_in_the_repository_points_at_documents_outside_it():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=BASE_DIR, capture_output=True, check=True).stdout
    offenders = []
    for name in filter(None, tracked.decode().split("\0")):
        path = BASE_DIR / name
        if path.suffix in {".png", ".jpg", ".mo", ".ico", ".woff2"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        if re.search(r"\.\./shared\b|shared/DESIGN\.md", text):
            offenders.append(name)
    assert offenders == [], offenders
