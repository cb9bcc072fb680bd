"""Keyset pages for the console's long lists: newest first on (a time, id), after an opaque cursor.

Page 5,000 costs what page 1 does (no OFFSET, no COUNT), given an index that
starts with the organization and then the time and id, descending.
"""

from __future__ import annotations

import base64
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime


def encode_cursor(row, field: str = "created_at") -> str:
    raw = f"{getattr(row, field).isoformat()}|{row.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    """(time, id) of the last row of the previous page; None for a missing or mangled cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, pk = raw.split("|")
        moment = parse_datetime(when)
        return (moment, int(pk)) if moment is not None and moment.tzinfo is not None else None
    except (ValueError, UnicodeDecodeError):
        return None


def keyset_page(rows: QuerySet, *, cursor: str = "", size: int, field: str = "created_at") -> tuple[list, str]:
    """(up to ``size`` rows newest first after ``cursor``, the next page's cursor or "")."""
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        moment, pk = after
        # The first condition is the index range; the second breaks ties on equal times.
        rows = rows.filter(**{f"{field}__lte": moment}).filter(Q(**{f"{field}__lt": moment}) | Q(pk__lt=pk))
    found = list(rows.order_by(f"-{field}", "-pk")[: size + 1])
    next_cursor = encode_cursor(found[size - 1], field) if len(found) > size else ""
    return found[:size], next_cursor


def keyset_context(request, rows: QuerySet, *, size: int, field: str = "created_at") -> dict:
    """A console list's page of ``rows`` after the request's ``after`` cursor, for its template:
    ``rows``, ``next_cursor``, ``query`` (the filters, without the cursor) and ``first_page``."""
    found, next_cursor = keyset_page(rows, cursor=request.GET.get("after", ""), size=size, field=field)
    query = request.GET.copy()
    query.pop("after", None)
    return {"rows": found, "next_cursor": next_cursor, "query": query.urlencode(),
            "first_page": not request.GET.get("after")}
