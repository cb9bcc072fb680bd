"""The API request log behind Developers → Logs: one row per request made with an organization's key.

What is kept: method, path (URL secrets masked as in the access log), status,
latency, the key's name, the request id, the ``Idempotency-Key`` and both
bodies, cut to :data:`MAX_BODY_CHARS` each.

What is masked before anything is stored (:func:`mask_body`):

- values of fields whose name says secret: ``password``, ``secret``, ``token``,
  ``api_key``/``*_key`` (but not ``idempotency_key``), ``authorization``, ``cvc``,
  ``cvv``, ``card_number``/``number`` (card data never belongs in Tinko's API);
- inside any text: card numbers (13–19 digits passing the Luhn check, spaces or
  dashes allowed) keep their last four; Tinko API keys (``tk_<prefix>_…``) keep
  their prefix; PSP secrets (``sk_``, ``rk_``, ``whsec_``, ``rzp_…``) keep their kind;
  a pay link's token (``/pay/<token>``) is replaced, since the link pays the debt.

Kept as sent: e-mail addresses, names and phone numbers. They are the merchant's
own customers, already shown on the Customers and Payments pages to the same
people, and they are what a developer searches a log for ("why did Ada's report
fail?"); the log is kept only TINKO_RETAIN_API_LOGS_DAYS (14 by default).

The row is made after the response is complete, outside the view's transaction, so a
log write can never undo the request's own work; a failed write is logged and forgotten
(the request already succeeded or failed on its own). ``TINKO_API_LOG_ENABLED=false``
turns it off.

What it costs a request is kept small: a body with nothing to mask (most of them) is
stored as sent rather than parsed and re-encoded, and the row is not written by the
request. On PostgreSQL it goes to this process's buffer, and a writer thread (with its
own database connection) stores what waits with one ``COPY``, committed without waiting
for the disk, every ``TINKO_API_LOG_FLUSH_MS`` (1,000) or as soon as
``TINKO_API_LOG_FLUSH_ROWS`` (200) rows wait: about a fifth of the CPU of an INSERT per
request, and no round trip on the request's path.

**What that trades.** Rows waiting in the buffer live in the process's memory only. A
web process killed without its shutdown (``kill -9``, out of memory, a machine lost)
loses the log lines of its last ``TINKO_API_LOG_FLUSH_MS`` at most (200 rows, or the
rows of that second); a graceful stop (SIGTERM, a gunicorn restart) writes them first
(``atexit``). A database error drops the batch it was writing (logged, with the count); a row
whose organization or key was deleted meanwhile is dropped alone (the batch is then written row
by row).
While the database cannot take them, at most :data:`MAX_BUFFERED` rows wait; later ones
are dropped and counted. Only log lines are ever at stake: the request's own work
(payments, events, attempts, idempotency records) was committed by the request itself
before the row was even made. ``TINKO_API_LOG_FLUSH_MS=0`` writes each row in its own
request instead (one prepared INSERT, committed without waiting for the disk), as local
mode (SQLite) always does.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import threading
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from tinko import logging as tinko_logging
from tinko.models import ApiKey, ApiRequestLog

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
MAX_BODY_CHARS = 8000
MASK = "••••"

_SECRET_FIELD = re.compile(
    r"(^|_)(password|passwd|secret|token|authorization|cvc|cvv|cvv2|pan|card_number|number)$|(^|_)(api_)?key$",
    re.IGNORECASE,
)
_NOT_SECRET_FIELDS = frozenset({"idempotency_key", "key_name", "customer_key", "card_key", "event_key"})
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
_TINKO_KEY = re.compile(r"\btk_([a-z0-9]{8})_[A-Za-z0-9_\-]+")
_PSP_SECRET = re.compile(r"\b(sk_live|sk_test|rk_live|rk_test|whsec|rzp_live|rzp_test)_[A-Za-z0-9]+")
_PAY_TOKEN = re.compile(r"(/pay/)[A-Za-z0-9_\-]{16,}")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return f"{MASK} {digits[-4:]}"
    return match.group(0)


def mask_text(text: str) -> str:
    """Secrets found anywhere in a text (see the module's docstring), masked.

    Runs on every string of every logged body: each pattern is tried only when a cheap
    substring test says it could match (most strings are short and hold none).
    """
    if len(text) < 12:
        return text
    if "/pay/" in text:
        text = _PAY_TOKEN.sub(r"\1" + MASK, text)
    if "tk_" in text:
        text = _TINKO_KEY.sub(lambda m: f"tk_{m.group(1)}_{MASK}", text)
    if "k_" in text or "whsec_" in text or "rzp_" in text:
        text = _PSP_SECRET.sub(lambda m: f"{m.group(1)}_{MASK}", text)
    if _MAYBE_CARD.search(text):
        text = _CARD.sub(_mask_card, text)
    return text


# What any card number _CARD could match spans: 13 or more digits, spaces and dashes, from a digit to a digit.
_MAYBE_CARD = re.compile(r"\d[\d -]{11,}\d")


@functools.lru_cache(maxsize=1024)
def _is_secret_field(key: str) -> bool:
    return key.lower() not in _NOT_SECRET_FIELDS and bool(_SECRET_FIELD.search(key))


def _mask_value(value, key: str = ""):
    if key and _is_secret_field(key) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, dict):
        return {k: _mask_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


# A JSON "name": value pair, and one cut off at the end of a kept prefix (its value unfinished).
_JSON_PAIR = re.compile(r'"([^"\\]{1,64})"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)')
_JSON_CUT_PAIR = re.compile(r'"([^"\\]{1,64})"\s*:\s*"(?:[^"\\]|\\.)*\\?$')


def _mask_json_prefix(text: str) -> str:
    """The first characters of a large JSON body, masked without parsing the whole of it."""

    def pair(match: re.Match) -> str:
        return f'"{match.group(1)}":"{MASK}"' if _is_secret_field(match.group(1)) else match.group(0)

    text = _JSON_PAIR.sub(pair, text)
    cut = _JSON_CUT_PAIR.search(text)
    if cut and _is_secret_field(cut.group(1)):
        text = text[: cut.start()] + f'"{cut.group(1)}":"{MASK}'
    return mask_text(text)


# Every key of a JSON text without backslashes: there a quote can only delimit a string, so a string
# followed by a colon is a key.
_JSON_KEY = re.compile(r'"([^"]*)"\s*:')


def _nothing_to_mask(raw: str) -> bool:
    """True when masking field by field would change nothing but the spacing: no escapes (which could
    hide a secret from a text search), no key named like a secret, and no secret in the text as a whole
    (the patterns stop at a string's quotes, so they find in the text what they find in its strings).

    Most bodies (an ingestion report and its answer) are like that; they are stored as sent, without
    being parsed and re-encoded.
    """
    return ("\\" not in raw and not any(map(_is_secret_field, _JSON_KEY.findall(raw)))
            and mask_text(raw) == raw)


def mask_body(raw: bytes | str) -> str:
    """A request or response body as stored: JSON masked field by field (compact), other text masked as text;
    cut to MAX_BODY_CHARS (the cut is said at the end). A body with nothing to mask is kept as sent.

    A body much longer than what is kept (a 1,000-event batch and its answer) is not
    parsed and re-encoded in full: only the kept prefix is masked, by the same rules
    (secret-named fields, card numbers, keys, tokens), so logging costs the same
    whatever the size of the request.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not raw:
        return ""
    if len(raw) <= MAX_BODY_CHARS and _nothing_to_mask(raw):
        return raw
    if len(raw) > 2 * MAX_BODY_CHARS:
        return _mask_json_prefix(raw[:MAX_BODY_CHARS]) + f"… [{len(raw) - MAX_BODY_CHARS} more characters not kept]"
    try:
        text = json.dumps(_mask_value(json.loads(raw)), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        text = mask_text(raw)
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + f"… [{len(text) - MAX_BODY_CHARS} more characters not kept]"
    return text


def pretty(body: str) -> str:
    """A stored body for reading: JSON indented, anything else as it is."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


_INSERT = None
# Prepared once per database connection (connections live CONN_MAX_AGE): the server neither parses
# nor plans the INSERT again (with 8 clients inserting log rows, prepared ones went through about
# 1.8 times as fast as the same INSERT sent as text with its bodies inline). Switched off for the
# process if the server loses the statement under it (a transaction-mode pooler without support
# for prepared statements, e.g. PgBouncer before 1.21).
_prepare = True


def _insert_sql() -> str:
    global _INSERT
    if _INSERT is None:
        table = connection.ops.quote_name(ApiRequestLog._meta.db_table)
        columns = ("(organization_id, api_key_id, key_name, method, path, status, duration_ms, request_id, "
                   "idempotency_key, request_body, response_body, created_at)")
        values = "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s"
        if connection.vendor == "postgresql":
            _INSERT = (f"INSERT INTO {table} {columns} SELECT {values} "
                       "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed")
        else:
            _INSERT = f"INSERT INTO {table} {columns} VALUES ({values})"
    return _INSERT


def _insert(row: tuple) -> None:
    """One INSERT, one round trip; on PostgreSQL a prepared statement with its parameters bound by the
    server (Django's cursors send every statement as text to be parsed and planned)."""
    global _prepare
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(), row)
        return
    from psycopg import errors

    connection.ensure_connection()
    # Wrapped as Django wraps its own cursors: errors become DatabaseError, metrics and tests see the query.
    with connection._prepare_cursor(_prepared_cursor_class()(connection.connection)) as cursor:
        try:
            cursor.execute(_insert_sql(), row)
        except DatabaseError as error:
            lost = isinstance(error.__cause__, (errors.InvalidSqlStatementName, errors.DuplicatePreparedStatement))
            if not (lost and _prepare and connection.get_autocommit()):
                raise
            _prepare = False
            logger.warning("The database lost the API log's prepared statement: logging with plain statements")
            cursor.execute(_insert_sql(), row)


@functools.cache
def _prepared_cursor_class():
    import psycopg

    class PreparedCursor(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            # Not while Django records the text of each query (DEBUG, a test capturing them): psycopg
            # keeps no text of a prepared statement's execution, which would be recorded as None.
            if not _prepare or connection.queries_logged:
                return super().execute(query, params, prepare=False, **kwargs)
            # Django turns psycopg's statement cache off for the connection (prepare_threshold None),
            # which ignores prepare=True. Turned on for this statement only: with it on, psycopg would
            # count every other statement of the connection on the way (Django's cursors never prepare).
            threshold = self.connection.prepare_threshold
            self.connection.prepare_threshold = 2**31 - 1 if threshold is None else threshold
            try:
                return super().execute(query, params, prepare=True, **kwargs)
            finally:
                self.connection.prepare_threshold = threshold

    return PreparedCursor


_COLUMNS = ("organization_id", "api_key_id", "key_name", "method", "path", "status", "duration_ms", "request_id",
            "idempotency_key", "request_body", "response_body", "created_at")
# While the database cannot take the rows, at most this many wait in a process; later ones are dropped.
MAX_BUFFERED = 20_000


class _Buffer:
    """This process's log rows waiting for the writer thread (see the module docstring)."""

    def __init__(self):
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.dropped = 0

    def add(self, row: tuple) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child inherits the parent's rows (the parent writes them) but not its thread.
                self._pid, self._rows, self._thread = os.getpid(), [], None
            if self._thread is None or not self._thread.is_alive():
                self._start_writer()
            if len(self._rows) >= MAX_BUFFERED:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    logger.warning("API log buffer full (database unreachable?): %d log rows dropped", self.dropped)
                return
            self._rows.append(row)
            full = len(self._rows) >= settings.TINKO_API_LOG_FLUSH_ROWS
        if full:
            self._wake.set()

    def pending(self) -> int:
        return len(self._rows)

    def _start_writer(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tinko-api-log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                self._wake.wait(max(settings.TINKO_API_LOG_FLUSH_MS, 10) / 1000)
                self._wake.clear()
                # This thread's own connection: closed when broken or too old, as a request would have it.
                close_old_connections()
                self.flush()
        finally:
            connection.close()

    def stop(self) -> None:
        """Let the writer finish its batch, end it, and write what still waits (at the process's exit; tests)."""
        thread = self._thread
        self._stop = True
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write the rows waiting now, on this thread's connection; the number written (0 on a database error)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            _copy(rows)
        except IntegrityError:
            # A row whose organization or key was deleted meanwhile: the others go in one by one.
            return sum(_copy_or_drop(row) for row in rows)
        except DatabaseError:
            logger.warning("Could not write %d API log rows", len(rows), exc_info=True)
            return 0
        except Exception:  # noqa: BLE001 - the writer thread must go on
            logger.exception("Could not write %d API log rows", len(rows))
            return 0
        return len(rows)


def _copy_or_drop(row: tuple) -> int:
    try:
        _copy([row])
    except DatabaseError:
        logger.warning("Could not write an API log row of organization %s", row[0], exc_info=True)
        return 0
    return 1


def _copy(rows: list[tuple]) -> None:
    """One transaction, committed without waiting for the disk: the rows go in with one COPY."""
    table = connection.ops.quote_name(ApiRequestLog._meta.db_table)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('synchronous_commit', 'off', true)")
            with connection.wrap_database_errors, cursor.cursor.copy(
                f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)


_buffer = _Buffer()


def flush() -> int:
    """Write this process's waiting log rows now (tests; the process's exit does it through :meth:`_Buffer.stop`)."""
    return _buffer.flush()


# A graceful stop (gunicorn's SIGTERM, a restart) lets the writer finish its batch, then writes the rest.
atexit.register(_buffer.stop)


def _buffered() -> bool:
    return settings.TINKO_API_LOG_FLUSH_MS > 0 and connection.vendor == "postgresql"


def record(*, api_key: ApiKey, request, response, body: bytes, duration_ms: int) -> None:
    """Store one request of ``api_key``'s organization (buffered: see the module); never raises."""
    try:
        response_body = b"" if response.streaming else response.content
        row = (
            api_key.organization_id, api_key.pk, api_key.name[:120], request.method[:10],
            tinko_logging.loggable_path(request)[:500], response.status_code, duration_ms,
            getattr(request, "request_id", "")[:64], request.headers.get("Idempotency-Key", "").strip()[:255],
            mask_body(body), mask_body(response_body), timezone.now(),
        )
        if _buffered():
            _buffer.add(row)
            return
        # Without waiting for the disk: a log row is worth no fsync on the request's path (the commit's
        # flush was most of the log's cost, ~20 % of a sequential request's time); a database crash in the
        # next moment can lose only log rows. As payments/inbox.py does for the raw webhook it stores.
        # One statement, one round trip: set_config(..., true) lasts for the statement's own transaction.
        _insert(row)
    except DatabaseError:
        # The database is what failed the request too, or is going away: the request has its answer already.
        logger.warning("Could not log API request %s %s", request.method, request.path, exc_info=True)
    except Exception:  # noqa: BLE001 - a log must never turn an answered request into a 500
        logger.exception("Could not log API request %s %s", request.method, request.path)


class ApiRequestLogMiddleware:
    """Logs each API request made with a valid key (see the module). Sits outside ApiErrorMiddleware so
    that it stores the JSON error the client actually received."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.TINKO_API_LOG_ENABLED or not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        started = time.monotonic()
        try:
            # Read now: the view may consume the stream, and the body is read in full by the parser anyway.
            body = request.body
        except RequestDataTooBig:
            body = b""
        response = self.get_response(request)
        api_key = getattr(request, "auth", None)
        if isinstance(api_key, ApiKey):
            record(api_key=api_key, request=request, response=response, body=body,
                   duration_ms=round((time.monotonic() - started) * 1000))
        return response
