"""tinko.textsafety: the nesting limit holds the same with and without the string check."""

from __future__ import annotations

import json

import pytest

from tinko.textsafety import MAX_JSON_DEPTH, JSONProblem, loads


def nested(depth: int) -> str:
    """A document whose deepest container is ``depth`` levels down, lists and objects in turn, beside shallow ones."""
    text = "1"
    for level in range(depth):
        text = f'{{"k": {text}, "flat": [1, {{}}]}}' if level % 2 else f"[{text}, [], 2]"
    return json.dumps({"events": [json.loads(text)], "other": {"a": [1]}})


def depth(value) -> int:
    if not isinstance(value, (dict, list)):
        return 0
    return 1 + max([depth(child) for child in (value.values() if isinstance(value, dict) else value)] or [0])


@pytest.mark.parametrize("escape", [False, True], ids=["depth-only", "with-string-check"])
def test_the_deepest_allowed_document_passes_and_one_level_more_is_refused(escape):
    suffix = ', "s": "\\u00e9"}' if escape else "}"  # a \\u escape turns the string check on
    ok = nested(MAX_JSON_DEPTH - 3)[:-1] + suffix
    deep = nested(MAX_JSON_DEPTH - 2)[:-1] + suffix
    assert (depth(json.loads(ok)), depth(json.loads(deep))) == (MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1)

    assert loads(ok)["events"]
    with pytest.raises(JSONProblem, match=f"nested more than {MAX_JSON_DEPTH} levels"):
        loads(deep)
