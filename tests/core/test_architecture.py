"""The layering written down in .importlinter holds, and no module imports itself through others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tinko", "recovery", "payments", "notifications", "analytics", "paypages", "onboarding")

# Groups of modules inside which a cycle is known and not yet broken; any other cycle fails the test below.
KNOWN_CYCLES = (
    # Payment.provider_label asks the registry for a provider outside the built-in choices, and the registry
    # reads the models; goes when the label moves out of the model (only the payment's page shows it).
    frozenset({"payments.models", "payments.providers", "recovery.models"}),
    # Stored messages enqueue their delivery actors, which call back into the module that stores them.
    frozenset({"notifications.delivery", "notifications.tasks"}),
    # Stored webhooks enqueue their processing actor, which calls back into the inbox that stored them.
    frozenset({"payments.inbox", "payments.tasks"}),
)


def test_import_contracts_hold():
    """A wrong-way import (even one inside a function) between the apps fails here, with the chain that makes it."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache", "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _cycles(graph) -> set[frozenset[str]]:
    """Groups of modules that import each other (strongly connected components of the import graph)."""
    modules = sorted(m for m in graph.modules if ".migrations" not in m)
    edges = {m: sorted(x for x in graph.find_modules_directly_imported_by(m) if x in graph.modules
                       and ".migrations" not in x) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    counter = 0
    for start in modules:
        if start in index:
            continue
        # Tarjan's algorithm, iteratively (the graph is deep enough to reach Python's recursion limit).
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.add(frozenset(group))
    return found


def test_no_new_import_cycles():
    """Modules that import each other, directly or through others, are one module in disguise: none beyond the known."""
    graph = grimp.build_graph(*APPS, cache_dir=None)

    new = [cycle for cycle in _cycles(graph) if not any(cycle <= known for known in KNOWN_CYCLES)]

    assert not new, "Modules that import each other: " + "; ".join(" ↔ ".join(sorted(c)) for c in new)
