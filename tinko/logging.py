"""Request ids in every log line (JSON by default, see LOGGING in settings), and no URL secrets in logs or Sentry.

RequestIDMiddleware puts the id in a context variable for the length of a
request; the filter copies it onto each record, so log calls anywhere (our
code, Django, libraries) carry it without passing it around. Context variables
follow the request into asgiref's sync/async hops, unlike thread-locals.
"""

from __future__ import annotations

import contextvars
import logging
import re
from urllib.parse import urlsplit, urlunsplit

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# URL keyword arguments that are bearer secrets (invitation and pay-page tokens,
# allauth's e-mail confirmation and password-reset keys): whoever reads the logs
# or the error reports must not be able to replay them.
SECRET_URL_KWARGS = frozenset({"token", "key", "uidb36"})


def _secrets_of(match) -> list[tuple[str, str]]:
    """(value, kwarg name) of each secret among a resolver match's arguments."""
    return [
        (value, name)
        for name, value in match.kwargs.items()
        if name in SECRET_URL_KWARGS and isinstance(value, str) and value
    ]


def _path_secrets(path: str) -> list[tuple[str, str]]:
    from django.urls import Resolver404, resolve

    # Without the slash, e.g. the APPEND_SLASH redirect, which runs before URL resolution.
    for candidate in (path, path + "/") if not path.endswith("/") else (path,):
        try:
            return _secrets_of(resolve(candidate))
        except Resolver404:
            continue
    return []


def _request_secrets(request) -> list[tuple[str, str]]:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return _secrets_of(match)
    # Answered before URL resolution (HTTPS or trailing-slash redirects): resolve it here.
    return _path_secrets(getattr(request, "path_info", None) or request.path)


def _mask(path: str, secrets: list[tuple[str, str]]) -> str:
    """Replace each secret's last occurrence in ``path`` by ``<name>``.

    Only that occurrence: a short one (a user id in base 36 such as "e") may
    also appear in the fixed part of the path or inside a longer secret, which
    is why the longest are placed first and no two may overlap.
    """
    spans: list[tuple[int, int, str]] = []
    for value, name in sorted(secrets, key=lambda secret: len(secret[0]), reverse=True):
        end = len(path)
        while (start := path.rfind(value, 0, end)) != -1:
            if all(start + len(value) <= taken_start or start >= taken_end for taken_start, taken_end, _ in spans):
                spans.append((start, start + len(value), name))
                break
            end = start + len(value) - 1
    for start, end, name in sorted(spans, reverse=True):
        path = f"{path[:start]}<{name}>{path[end:]}"
    return path


def mask_path(path: str) -> str:
    """``/invitations/abc123/`` → ``/invitations/<token>/``; paths without secrets are returned as they are."""
    return _mask(path, _path_secrets(path))


def loggable_path(request) -> str:
    """The request's path (never the query string) with URL secrets masked."""
    return _mask(request.path, _request_secrets(request))


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


class MaskURLSecretsFilter(logging.Filter):
    """Mask URL secrets in records about a request, e.g. Django's "Forbidden: /invitations/<token>/".

    Django's request loggers put the raw path in the message arguments and
    attach the request. Attached to those loggers (not only to a handler), the
    record is masked before Sentry's logging integration turns it into a
    breadcrumb or an event.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        # Only Django requests: runserver's "django.server" records carry a socket under that name.
        if not isinstance(path, str) or getattr(record, "_tinko_masked", False):
            return True
        masked = loggable_path(request)
        if masked != path:
            # Django puts request.path itself into the message or its arguments.
            def mask(value):
                return value.replace(path, masked) if isinstance(value, str) else value

            record.msg = mask(record.msg)
            if isinstance(record.args, tuple):
                record.args = tuple(mask(arg) for arg in record.args)
            elif isinstance(record.args, dict):
                record.args = {name: mask(arg) for name, arg in record.args.items()}
        record._tinko_masked = True
        return True


class JsonFormatter(_JsonFormatter):
    """JSON lines; extra fields are kept, except the request object Django attaches.

    Its repr includes the query string (tokens, e-mail addresses), and the
    request id and path are already on the line.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request", "_tinko_masked"])
        super().__init__(*args, **kwargs)


def _mask_url(url: str) -> str:
    """Mask the path's secrets and drop the query string and fragment (tokens, e-mail addresses)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, mask_path(parts.path), "", ""))


# How Sentry shows a request among a frame's local variables: HttpRequest's repr,
# with the full path and query string.
_REQUEST_REPR_RE = re.compile(r"<(\w*Request): ([A-Z]+) '([^'?]*)(?:\?[^']*)?'>")
# Shorter values (allauth's user id in base 36) are masked in paths only: replaced
# anywhere they would mangle unrelated text, and they are not what grants access.
_MIN_SCRUBBED_SECRET = 8


def _scrub(value, secrets: list[tuple[str, str]]):
    if isinstance(value, str):
        value = _REQUEST_REPR_RE.sub(lambda m: f"<{m[1]}: {m[2]} '{mask_path(m[3])}'>", value)
        for secret, name in secrets:
            value = value.replace(secret, f"<{name}>")
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


def sentry_before_send(event: dict, hint: dict | None = None) -> dict:
    """Sentry hook (errors and transactions): no URL secret or query string leaves the process.

    Besides the request's URL, the secrets are masked wherever else they show:
    local variables of the stack frames, the Referer, log breadcrumbs.
    """
    request = event.get("request")
    secrets: list[tuple[str, str]] = []
    if isinstance(request, dict):
        url = request.get("url")
        if isinstance(url, str):
            secrets = [s for s in _path_secrets(urlsplit(url).path) if len(s[0]) >= _MIN_SCRUBBED_SECRET]
            request["url"] = _mask_url(url)
        request.pop("query_string", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() == "referer" and isinstance(headers[name], str):
                    headers[name] = _mask_url(headers[name])
    return _scrub(event, secrets)
