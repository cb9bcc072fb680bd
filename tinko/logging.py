"""Request ids in every log line (JSON by default, see LOGGING in settings).

RequestIDMiddleware puts the id in a context variable for the length of a
request; the filter copies it onto each record, so log calls anywhere (our
code, Django, libraries) carry it without passing it around. Context variables
follow the request into asgiref's sync/async hops, unlike thread-locals.
"""

from __future__ import annotations

import contextvars
import logging

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIDFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # An id passed explicitly (extra={"request_id": ...}) wins over the ambient one.
        if not hasattr(record, "request_id"):
            request_id = request_id_var.get()
            if request_id == "-":
                # Django logs a request's 4xx/5xx outcome ("Not Found: /x") after the
                # middleware chain has returned, but passes the request along.
                request_id = getattr(getattr(record, "request", None), "request_id", None) or "-"
            record.request_id = request_id
        return True


class JsonFormatter(_JsonFormatter):
    """JSON lines; extra fields are kept, except the request object Django attaches.

    Its repr includes the query string (tokens, e-mail addresses), and the
    request id and path are already on the line.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request"])
        super().__init__(*args, **kwargs)
