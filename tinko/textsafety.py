"""Checks for text and JSON that came from outside, before anything stores or walks it.

Shared by the API's parser and the webhook endpoints: the same bad input gets
the same reason wherever it arrives.
"""

from __future__ import annotations

import json

# Deeper documents are refused: no request of ours nests more than a few levels.
MAX_JSON_DEPTH = 32


class JSONProblem(ValueError):
    """Why a body is not JSON Tinko can take, in words for the caller."""


def loads(raw: bytes | str, *, check: bool = True):
    """``json.loads`` with every failure as :class:`JSONProblem` (bad UTF-8, bad syntax, runaway nesting);
    with ``check``, also :func:`check_json_value`'s."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONProblem("the body is not UTF-8 text") from None
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JSONProblem(f"the document is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise JSONProblem(f"not valid JSON ({exc})") from None
    if check:
        check_json_value(value, strings="\\u" in raw)
    return value


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as is (a NUL character, a lone surrogate), or None."""
    if "\x00" in text:
        return "it contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it contains a lone surrogate (not a Unicode character)"
    return None


def check_json_value(value, *, strings: bool = True) -> None:
    """JSONProblem unless every string (keys too) can be stored and nesting stays within MAX_JSON_DEPTH.

    ``strings=False`` checks the nesting only: parsed JSON can hold a NUL or a
    lone surrogate only through a ``\\u`` escape, so a body without one needs no string check.
    """
    if not strings:
        _check_depth(value)
        return
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not strings:
                continue
            problem = text_problem(item)
            if problem:
                raise JSONProblem(f"a string is not text: {problem}")
            continue
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise JSONProblem(f"the document is nested more than {MAX_JSON_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    stack.append((key, depth))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_depth(value) -> None:
    """The nesting part of :func:`check_json_value`: only containers are walked (a batch holds a hundred thousand strings),
    a level at a time (half the time of a stack of (container, depth) pairs on a 1,000-event batch)."""
    containers = (dict, list)
    level = [value] if isinstance(value, containers) else []
    depth = 1
    while level:
        if depth > MAX_JSON_DEPTH:
            raise JSONProblem(f"the document is nested more than {MAX_JSON_DEPTH} levels deep")
        below = []
        for item in level:
            below.extend([child for child in (item.values() if isinstance(item, dict) else item)
                          if isinstance(child, containers)])
        level = below
        depth += 1


def storable(text: str) -> str:
    """``text`` with what a database cannot hold replaced (NUL by U+FFFD, a lone surrogate by "?"), for records of what arrived."""
    if text_problem(text) is None:
        return text
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
