"""The API's JSON parser: DRF's, plus the limits a database and a serializer need.

DRF's parser passes through anything ``json.loads`` accepts. Some of that
cannot be stored or would fail deep inside a request instead of at its door: a
document nested thousands of levels deep (RecursionError), a lone surrogate
such as ``"\\ud800"`` (PostgreSQL cannot encode it), a NUL character (text and
jsonb columns refuse it). Each is a 400 ``parse_error`` with the reason.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from tinko.textsafety import JSONProblem, loads


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            data = loads(raw)
        except JSONProblem as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return data
