"""Bulk reads and writes: one statement for a thousand rows, values converted as the ORM converts them.

The one way Tinko writes many rows outside ``Model.save()`` (ingestion, the
runner, sample data). Ingestion writes customers, payments, events and
attempts for up to 1,000 reports per request: a multi-row INSERT
(``bulk_create``) spends most of its time adapting each of its ~20,000
parameters, while ``COPY`` with ids drawn from the sequences up front takes a
tenth of that. ``bulk_update`` builds a ``CASE`` per field whose cost grows
with rows².

Every value goes through its field's ``get_db_prep_save`` (JSON, encrypted or
any custom field is stored as ``save()`` would store it), except for the
built-in fields whose conversion on PostgreSQL returns a valid Python value
unchanged (:data:`_AS_IS`): skipping those keeps the hot path as fast as a
raw COPY. Fields with ``auto_now`` / ``auto_now_add`` that a row leaves empty
get the write's time; a row may carry its own (imports, sample history).

PostgreSQL: COPY for many rows, INSERT for a few. Elsewhere (SQLite in local
mode) a multi-row INSERT, in batches the backend accepts.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
from operator import attrgetter
from typing import NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, models
from django.db.models import Q, signals
from django.db.models.base import ModelState
from django.db.models.query_utils import DeferredAttribute
from django.utils import timezone

MAX_PARAMETERS = 60_000  # PostgreSQL allows 65,535 per statement

# Up to this many new rows go in with one INSERT statement (one round trip for
# every table); more go in with COPY, table by table.
SMALL_WRITE = 40

# Built-in fields whose get_db_prep_save on PostgreSQL (psycopg 3) hands a valid
# Python value through unchanged: the driver adapts it.
_AS_IS = (
    models.AutoField, models.BigAutoField, models.SmallAutoField, models.IntegerField, models.BigIntegerField,
    models.SmallIntegerField, models.PositiveIntegerField, models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField, models.CharField, models.TextField, models.EmailField, models.URLField,
    models.SlugField, models.BooleanField, models.DateTimeField, models.DateField, models.DecimalField,
)


def _cache_split_statements() -> None:
    """Let psycopg keep the parsed form of statements with up to 200 parameters, not 50.

    Django's cursors bind parameters client-side, and psycopg parses each statement for its
    placeholders unless it has it in its cache (128 statements of at most 4,096 bytes), which it
    refuses to statements of more than 50 parameters. A single report's INSERT of customer, payment,
    event and attempt has 96: parsing it again took 0.12 ms of every ingested report's CPU. The
    length limit (and so the memory: 128 x 4 KB at most) stays as it is.
    """
    try:
        from psycopg import _queries
    except ImportError:  # SQLite only (local mode without psycopg)
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", 0) < 200:
        _queries.MAX_CACHED_STATEMENT_PARAMS = 200


_cache_split_statements()


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def literal(choice) -> str:
    """A choice value (a status, a kind) as an SQL string literal, for statements that need the constant itself.

    PostgreSQL matches a partial index (``WHERE kind = 'auto_retry'``) to a
    query only when the query names the same constant, not a parameter.
    """
    value = str(getattr(choice, "value", choice))
    if not value.replace("_", "").isalnum() or not value.isascii():
        raise ValueError(f"not a plain choice value: {value!r}")
    return f"'{value}'"


def _as_is(field) -> bool:
    if type(field) in (models.ForeignKey, models.OneToOneField):
        return _as_is(field.target_field)
    return type(field) in _AS_IS


def _prep(field):
    """How a Python value of ``field`` becomes a driver value: None when it needs nothing (PostgreSQL only)."""
    if connection.vendor == "postgresql" and _as_is(field):
        return None
    if type(field) is models.JSONField and connection.vendor == "postgresql":
        # JSONField.get_db_prep_save without its expression checks (this runs for every row of a batch).
        encoder, adapt = field.encoder, connection.ops.adapt_json_value
        return lambda value: None if value is None else adapt(value, encoder)
    return lambda value, field=field: field.get_db_prep_save(value, connection)


def _copy_prep(field):
    """As :func:`_prep`, for ``COPY … FROM STDIN`` in text format, where a column's value is its text.

    A JSON value goes in as the JSON text itself, which is what psycopg's JSON adapter would
    write in its place; an empty object or list (most metadata, results, opt-outs) without
    calling the encoder at all.
    """
    if type(field) is models.JSONField and connection.vendor == "postgresql":
        dumps = json.dumps if field.encoder is None else functools.partial(json.dumps, cls=field.encoder)

        def prep(value):
            if value is None:
                return None
            if not value and type(value) in (dict, list):
                return "{}" if type(value) is dict else "[]"
            return dumps(value)

        return prep
    return _prep(field)


class _Columns:
    """How rows of one model become column values (cached per model and database vendor)."""

    def __init__(self, model, fields):
        self.fields = fields
        self.attnames = [f.attname for f in fields]
        get = attrgetter(*self.attnames)
        self.get = get if len(fields) > 1 else (lambda row: (get(row),))
        self.preps = [(i, prep) for i, prep in enumerate(_prep(f) for f in fields) if prep is not None]
        self.copy_preps = [(i, prep) for i, prep in enumerate(_copy_prep(f) for f in fields) if prep is not None]
        self.stamped = [
            (i, f) for i, f in enumerate(fields) if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        ]
        # Fields with a pre_save of their own (other than the timestamps above) need an instance.
        self.pre_saved = [
            (i, f) for i, f in enumerate(fields)
            if type(f).pre_save is not models.Field.pre_save and not isinstance(f, models.DateField)
        ]
        self.defaults = [f.get_default for f in fields]
        qn = connection.ops.quote_name
        self.table = qn(model._meta.db_table)
        self.column_list = ", ".join(qn(f.column) for f in fields)

    def values(self, row, now, *, copy: bool = False):
        """The driver values of one row (an instance or a dict of attnames; missing keys take their defaults);
        ``copy``: as text-format ``COPY`` takes them."""
        if isinstance(row, dict):
            if self.pre_saved:
                raise TypeError(f"{', '.join(f.name for _, f in self.pre_saved)}: pass instances, not dicts")
            values = [row[name] if name in row else default() for name, default in zip(self.attnames, self.defaults)]
        else:
            # attrgetter reads every column in C: the per-row cost of a batch is mostly this.
            values = list(self.get(row))
            for i, field in self.pre_saved:
                values[i] = field.pre_save(row, True)
        for i, field in self.stamped:
            if values[i] is None:
                values[i] = now.date() if type(field) is models.DateField else now
                if not isinstance(row, dict):
                    setattr(row, field.attname, values[i])
        for i, prep in self.copy_preps if copy else self.preps:
            values[i] = prep(values[i])
        return values


_COLUMNS: dict = {}


def _columns(model, *, with_pk: bool = True) -> _Columns:
    key = (model, with_pk, connection.vendor)
    found = _COLUMNS.get(key)
    if found is None:
        fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
        found = _COLUMNS[key] = _Columns(model, fields)
    return found


_SEQUENCES: dict = {}


def _sequence(model) -> str:
    """The name of the sequence behind ``model``'s primary key (looked up once per process)."""
    name = _SEQUENCES.get(model)
    if name is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [model._meta.db_table, model._meta.pk.column])
            name = _SEQUENCES[model] = cursor.fetchone()[0]
    return name


def allocate_ids(counts: dict) -> dict:
    """Primary keys for new rows, drawn from each model's sequence in one round trip: {model: [ids]} (PostgreSQL).

    The sequence is named by its regclass, looked up once: ``pg_get_serial_sequence`` in the
    select list ran once per id (4,000 catalogue lookups for a batch).
    """
    wanted = [(model, n) for model, n in counts.items() if n]
    if not wanted:
        return {model: [] for model in counts}
    parts, params = [], []
    for model, n in wanted:
        parts.append("(SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s))")
        params.extend([_sequence(model), n])
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        arrays = cursor.fetchone()
    ids = {model: [] for model in counts}
    for (model, _), array in zip(wanted, arrays):
        ids[model] = list(array)
    return ids


def _pk(row):
    return row.get("id") if isinstance(row, dict) else row.pk


def _set_pk(row, pk) -> None:
    if isinstance(row, dict):
        row["id"] = pk
    else:
        row.pk = pk


def _saved(rows) -> None:
    alias = connection.alias  # once: ``connection`` is a per-thread proxy, slow to read per row
    for row in rows:
        if not isinstance(row, dict):
            state = row._state
            state.adding = False
            state.db = alias


def insert(groups) -> None:
    """Insert new rows: ``groups`` is [(model, rows), ...], rows are unsaved instances or dicts of attnames.

    Rows without an id get one: on PostgreSQL drawn from the sequences first
    (one round trip for every table), elsewhere returned by the INSERT; an
    instance gets its ``pk``, a dict its ``"id"``. A unique violation raises
    Django's IntegrityError like any other write.

    On PostgreSQL a few rows (a single report) take one statement, an INSERT
    per table chained as data-modifying CTEs; many rows (a batch) take a COPY
    per table. Foreign keys are checked at commit (Django creates them
    DEFERRABLE INITIALLY DEFERRED), so the order of the groups does not matter
    there; elsewhere give referenced tables first.
    """
    groups = [(model, rows if isinstance(rows, list) else list(rows)) for model, rows in groups]
    groups = [(model, rows) for model, rows in groups if rows]
    if not groups:
        return
    now = timezone.now()
    if not is_postgresql():
        for model, rows in groups:
            _insert_returning(model, rows, now)
        _saved(row for _, rows in groups for row in rows)
        return
    missing: dict = {}
    for model, rows in groups:
        attname = model._meta.pk.attname  # not ``row.pk``: a property, and a batch has thousands of rows
        missing.setdefault(model, []).extend(
            row for row in rows if (row.get("id") if isinstance(row, dict) else getattr(row, attname)) is None
        )
    if any(missing.values()):
        ids = allocate_ids({model: len(rows) for model, rows in missing.items()})
        for model, rows in missing.items():
            for row, pk in zip(rows, ids[model]):
                _set_pk(row, pk)
    if sum(len(rows) for _, rows in groups) > SMALL_WRITE:
        for model, rows in groups:
            _copy(model, rows, now)
    else:
        _insert_chained(groups, now)
    _saved(row for _, rows in groups for row in rows)


def _copy(model, rows, now) -> None:
    columns = _columns(model)
    statement = f"COPY {columns.table} ({columns.column_list}) FROM STDIN"
    values = columns.values
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(values(row, now, copy=True))


def _insert_chained(groups, now) -> None:
    inserts, params = [], []
    for model, rows in groups:
        columns = _columns(model)
        placeholders = "(" + ", ".join(["%s"] * len(columns.fields)) + ")"
        inserts.append(f"INSERT INTO {columns.table} ({columns.column_list}) VALUES {', '.join([placeholders] * len(rows))}")
        for row in rows:
            params.extend(columns.values(row, now))
    *ctes, last = inserts
    statement = "WITH " + ", ".join(f"w{i} AS ({insert})" for i, insert in enumerate(ctes)) + " " + last if ctes else last
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _insert_returning(model, rows, now) -> None:
    """Multi-row INSERTs (not PostgreSQL): rows with ids as they are, the others with ids the database returns."""
    qn = connection.ops.quote_name
    pk_column = qn(model._meta.pk.column)
    for with_pk, part in ((True, [r for r in rows if _pk(r) is not None]), (False, [r for r in rows if _pk(r) is None])):
        if not part:
            continue
        columns = _columns(model, with_pk=with_pk)
        size = max(1, connection.ops.bulk_batch_size(columns.fields, part))
        placeholders = "(" + ", ".join(["%s"] * len(columns.fields)) + ")"
        with connection.cursor() as cursor:
            for start in range(0, len(part), size):
                chunk = part[start:start + size]
                params = [value for row in chunk for value in columns.values(row, now)]
                statement = f"INSERT INTO {columns.table} ({columns.column_list}) VALUES {', '.join([placeholders] * len(chunk))}"
                if with_pk:
                    cursor.execute(statement, params)
                    continue
                # RETURNING gives the rows' ids in the order of the VALUES (SQLite and PostgreSQL both do).
                cursor.execute(statement + f" RETURNING {pk_column}", params)
                for row, (pk,) in zip(chunk, cursor.fetchall()):
                    _set_pk(row, pk)


def update(model, objs, field_names: list[str], *, where: Q | None = None) -> int:
    """Save ``field_names`` of many rows in one ``UPDATE … FROM (VALUES …)``; the number of rows updated.

    Not ``bulk_update()``: it builds a ``CASE WHEN pk=… THEN …`` per field whose
    cost grows with rows² (in Python and in PostgreSQL): 1,000 payments took
    over 10 s, and ten e-mails' outcomes cost 1 ms of CPU each. Values go through
    each field's ``get_db_prep_save`` (see the module docstring) and are cast to
    its column type, as ``bulk_update()`` would do. ``where`` (exact and ``__in``
    lookups on the stored row, as :func:`fetch`): only rows that still match it
    are updated (a lease still held, a status not changed meanwhile).
    """
    objs = list(objs)
    if not objs:
        return 0
    if not is_postgresql():
        # SQLite (local mode) has no ``::`` casts; its batches are small anyway.
        manager = model._default_manager
        return (manager.filter(where) if where is not None else manager).bulk_update(objs, field_names)
    fields = [model._meta.get_field(name) for name in field_names]
    pk = model._meta.pk
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in [pk, *fields])
    assignments = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}::{f.db_type(connection)}" for f in fields)
    row = "(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"
    chunk = MAX_PARAMETERS // (len(fields) + 1)
    preps = [_prep(f) for f in fields]
    attnames = [f.attname for f in fields]
    condition, condition_params = "", []
    if where is not None:
        condition = f" AND ({_where(model, where, condition_params, alias='t')})"
        chunk = (MAX_PARAMETERS - len(condition_params)) // (len(fields) + 1)
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), chunk):
            part = objs[start:start + chunk]
            params = []
            for obj in part:
                params.append(obj.pk)
                for name, prep in zip(attnames, preps):
                    value = getattr(obj, name)
                    params.append(value if prep is None else prep(value))
            cursor.execute(
                f"UPDATE {qn(model._meta.db_table)} AS t SET {assignments} "
                f"FROM (VALUES {', '.join([row] * len(part))}) AS v({columns}) "
                f"WHERE t.{qn(pk.column)} = v.{qn(pk.column)}::{pk.db_type(connection)}{condition}",
                params + condition_params,
            )
            updated += cursor.rowcount
    return updated


def update_if(model, objs, field_names: list[str], *, match=(), where: Q | None = None) -> set:
    """:func:`update` made conditional: save ``field_names`` of the rows that still are as the caller expects.

    A row is written only where its ``match`` fields (e.g. the claim number)
    still hold the instance's values and ``where`` (exact and ``__in``
    lookups, as :func:`fetch`) holds for the stored row; one ``UPDATE … FROM
    (VALUES …) … RETURNING`` on PostgreSQL. Returns the pks of the rows written,
    so of two callers racing for the same change exactly one wins each row.
    """
    objs = list(objs)
    if not objs:
        return set()
    if not is_postgresql():
        written = set()
        for obj in objs:
            attnames = [model._meta.get_field(name).attname for name in match]
            rows = model._default_manager.filter(pk=obj.pk, **{name: getattr(obj, name) for name in attnames})
            if where is not None:
                rows = rows.filter(where)
            attnames = [model._meta.get_field(name).attname for name in field_names]
            if rows.update(**{name: getattr(obj, name) for name in attnames}):
                written.add(obj.pk)
        return written
    fields = [model._meta.get_field(name) for name in field_names]
    matched = [model._meta.get_field(name) for name in match]
    pk = model._meta.pk
    qn = connection.ops.quote_name
    every = [pk, *fields, *matched]
    # One array per column (unnest), not a VALUES row per object: the statement's text and its few parameters
    # stay the same whatever the number of rows, so the driver parses it once (it re-parses any statement
    # with more than 50 parameters every time).
    arrays = ", ".join(f"%s::{f.db_type(connection).split('(')[0]}[]" for f in every)
    columns = ", ".join(qn(f.column) for f in every)
    assignments = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in fields)
    conditions = [f"t.{qn(f.column)} = v.{qn(f.column)}" for f in [pk, *matched]]
    params: list = []
    params.append([obj.pk for obj in objs])
    for field in every[1:]:
        name, prep = field.attname, _prep(field)
        values = [getattr(obj, name) for obj in objs]
        params.append(values if prep is None else [prep(value) for value in values])
    if where is not None:
        conditions.append(_where(model, where, params, alias="t"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(model._meta.db_table)} AS t SET {assignments} "
            f"FROM unnest({arrays}) AS v({columns}) "
            f"WHERE {' AND '.join(conditions)} RETURNING t.{qn(pk.column)}",
            params,
        )
        return {pk_value for (pk_value,) in cursor.fetchall()}


def _where(model, q: Q, params: list, *, alias: str = "") -> str:
    """SQL for a Q of equality and ``__in`` lookups (combined with &, | and ~), columns from the model's fields
    (of the table ``alias`` when given)."""
    qn = connection.ops.quote_name
    parts = []
    for child in q.children:
        if isinstance(child, Q):
            parts.append("(" + _where(model, child, params, alias=alias) + ")")
            continue
        name, value = child
        lookup = "exact"
        if "__" in name:
            name, lookup = name.rsplit("__", 1)
        field = model._meta.get_field(name)
        column = f"{alias}.{qn(field.column)}" if alias else qn(field.column)
        if lookup == "in":
            values = list(value)
            if not values:
                parts.append("1 = 0")
            elif is_postgresql():
                parts.append(f"{column} = ANY(%s)")
                params.append(values)
            else:
                parts.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
                params.extend(field.get_db_prep_value(v, connection) for v in values)
        elif lookup == "exact":
            parts.append(f"{column} = %s")
            params.append(field.get_db_prep_value(value, connection))
        else:
            raise ValueError(f"bulk.fetch knows exact and __in lookups, not __{lookup}")
    sql = f" {q.connector} ".join(parts)
    return f"NOT ({sql})" if q.negated else sql


def fetch(model, where: Q, *, order_by: str | tuple | None = None, lock: bool = False) -> list:
    """Instances of ``model`` matching ``where`` (exact and ``__in`` lookups), every concrete column, converted as the ORM would.

    For the ingestion hot path, where building a QuerySet costs more than the
    query. ``order_by`` is a field name or a tuple of them; ``lock`` adds ``FOR UPDATE``. Write
    ``~Q(external_id="")`` where a partial index has that condition, so that
    PostgreSQL can use it.
    """
    fields, _ = _select_list(model)
    params: list = []
    statement = _fetch_sql(model, where, order_by=order_by, lock=lock, params=params)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [from_row(model, fields, row) for row in rows]


def _fetch_sql(model, where: Q, *, order_by, lock, params: list) -> str:
    _, select = _select_list(model)
    return (
        f"{select} WHERE {_where(model, where, params)}"
        + (" ORDER BY " + ", ".join(connection.ops.quote_name(model._meta.get_field(name).column)
                                    for name in ((order_by,) if isinstance(order_by, str) else order_by))
           if order_by else "")
        + (" FOR UPDATE" if lock and connection.features.has_select_for_update else "")
    )


class Rows(NamedTuple):
    """A plain statement for :func:`fetch_together`: its rows come back as tuples of ``width`` values, each
    row once by its first column (a unique id), in no particular order."""
    sql: str
    params: list
    width: int


class Leading:
    """A statement that the next :func:`fetch_together` of this context runs first, in the same round trip
    (see :func:`leading`). ``done`` once it ran; ``value``: the one value it returned."""

    def __init__(self, sql: str, params: list):
        self.sql, self.params = sql, params
        self.done = False
        self.value = None


class LeadingRefused(Exception):
    """Raised by :func:`fetch_together` when its leading statement returned no row (nothing of the fetch is used)."""


_LEADING: contextvars.ContextVar = contextvars.ContextVar("tinko_bulk_leading", default=None)


@contextlib.contextmanager
def leading(sql: str, params: list):
    """Let the first :func:`fetch_together` inside this block run ``sql`` before its own work, in its one round
    trip: ``sql`` is a data-modifying statement ending in ``RETURNING <one column>`` that gives one row or none
    (``INSERT … ON CONFLICT DO NOTHING RETURNING id``). It runs as a ``WITH`` of the fetch, whose first
    column reads it, so it has run (and waited, if it waits) before the fetch's lookups lock anything. No row:
    :class:`LeadingRefused`. Yields the :class:`Leading`; if no fetch ran it, ``done`` is False and the owner
    runs it itself."""
    lead = Leading(sql, params)
    token = _LEADING.set(lead)
    try:
        yield lead
    finally:
        _LEADING.reset(token)


def fetch_together(queries, *, counts: dict) -> tuple[list[list], dict]:
    """Several :func:`fetch` and :func:`allocate_ids` in one round trip (PostgreSQL): one list of
    instances per query, in its order, and {model: [ids]}. ``queries`` are (model, where, order_by, lock),
    or :class:`Rows` for a statement whose rows are wanted as tuples.

    For a single report, which looks up its event, customer and payment, and draws the ids of the rows
    it may create, at once. Ids drawn and left unused are gaps in their sequences, as any rolled-back
    insert leaves. Each query becomes a ``LEFT JOIN LATERAL`` of the one row of ids, run and locked in
    the order given; their rows come back as a product, which is split here (keep each query to a few
    rows).
    """
    wanted = [(m, n) for m, n in counts.items() if n]
    params: list = []
    parts = []
    lead = _LEADING.get()
    if lead is not None and lead.done:
        lead = None
    if lead is not None:
        parts.append("(SELECT * FROM leading_row) AS leading_value")
        params.extend(lead.params)
    for i, (m, n) in enumerate(wanted):
        parts.append(f"(SELECT array_agg(nextval(pg_get_serial_sequence(%s, %s))) FROM generate_series(1, %s)) AS i{i}")
        params.extend([m._meta.db_table, m._meta.pk.column, n])
    sql = f"SELECT * FROM (SELECT {', '.join(parts) or '1 AS i0'}) AS ids"
    if lead is not None:
        sql = f"WITH leading_row AS ({lead.sql}) {sql}"
    layout, offset = [], len(parts) or 1
    for i, query in enumerate(queries):
        if isinstance(query, Rows):
            sql += f" LEFT JOIN LATERAL ({query.sql}) AS t{i} ON true"
            params.extend(query.params)
            layout.append((None, query.width, offset, offset))
            offset += query.width
            continue
        model, where, order_by, lock = query
        fields, _ = _select_list(model)
        sql += f" LEFT JOIN LATERAL ({_fetch_sql(model, where, order_by=order_by, lock=lock, params=params)}) AS t{i} ON true"
        layout.append((model, fields, offset, offset + fields.index(model._meta.pk)))
        offset += len(fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    first = rows[0]
    if lead is not None:
        lead.done, lead.value = True, first[0]
        if lead.value is None:
            raise LeadingRefused()
        first = first[1:]
    ids = {m: [] for m in counts}
    for (m, _), array in zip(wanted, first):
        ids[m] = list(array)
    found = []
    for model, fields, start, pk_at in layout:
        seen, instances = set(), []
        width = len(fields) if model is not None else fields
        for row in rows:
            pk = row[pk_at]
            if pk is not None and pk not in seen:
                seen.add(pk)
                values = row[start:start + width]
                instances.append(from_row(model, fields, values) if model is not None else values)
        found.append(instances)
    return found, ids


_SELECTS: dict = {}


def _select_list(model) -> tuple[list, str]:
    """The model's concrete fields and ``SELECT <their columns> FROM <table>`` (made once per model and vendor)."""
    key = (model, connection.vendor)
    found = _SELECTS.get(key)
    if found is None:
        fields = list(model._meta.concrete_fields)
        qn = connection.ops.quote_name
        found = _SELECTS[key] = (fields, f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(model._meta.db_table)}")
    return found


def from_row(model, fields, values):
    """An instance from raw column values of ``fields``, converted as the ORM's own read converts them."""
    key = (model, connection.vendor, tuple(f.attname for f in fields))
    converters = _CONVERTERS.get(key)
    if converters is None:
        converters = []
        for i, field in enumerate(fields):
            col = field.get_col(model._meta.db_table)
            funcs = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
            if funcs:
                converters.append((i, col, funcs))
        converters = _CONVERTERS[key] = (key[2], converters)
    attnames, converters = converters
    values = list(values)
    for i, col, funcs in converters:
        for convert in funcs:
            values[i] = convert(values[i], col, connection)
    return model.from_db(connection.alias, attnames, values)


_CONVERTERS: dict = {}


_RELATIONS: dict = {}


def attach(obj, name: str, related) -> None:
    """``obj.<name> = related`` for a many-to-one field, as its descriptor does it, without the per-call checks.

    Sets the id column and the cached object, and the rows' database alias where they
    have none yet (the descriptor's router, with no routers configured). For the ingestion
    hot path, which attaches a thousand payments to their organization, customer and policy.
    ``related`` must be an instance of the field's model (or None): nothing checks it here.
    """
    key = (type(obj), name)
    field = _RELATIONS.get(key)
    if field is None:
        field = obj._meta.get_field(name)
        if not field.many_to_one or field.remote_field.one_to_one or len(field.related_fields) != 1:
            raise TypeError(f"attach() sets a plain foreign key, not {type(obj).__name__}.{name}")
        _RELATIONS[key] = field
    target = field.related_fields[0][1].attname
    state = obj._state
    if related is None:
        obj.__dict__[field.attname] = None
    else:
        related_state = related._state
        if state.db is None:
            state.db = related_state.db or DEFAULT_DB_ALIAS
        if related_state.db is None:
            related_state.db = state.db
        obj.__dict__[field.attname] = getattr(related, target)
    state.fields_cache[name] = related


_BUILD_FIELDS: dict = {}


def build(model, **values):
    """A new, unsaved instance from column values (attnames: ``payment_id``, not ``payment``).

    Fills the instance's ``__dict__`` as ``Model.__init__`` would for a new
    row, without its per-field work (descriptors, signals, a default looked up
    for every field): a batch builds four thousand instances. Missing fields
    take their defaults (constant ones worked out once per model). For models
    without ``pre_init``/``post_init`` receivers and custom field descriptors,
    which :func:`_build_spec` checks.
    """
    spec = _BUILD_FIELDS.get(model)
    if spec is None:
        spec = _BUILD_FIELDS[model] = _build_spec(model)
    fixed, made = spec
    if not values.keys() <= fixed.keys():
        raise TypeError(f"{model.__name__} has no columns {', '.join(sorted(values.keys() - fixed.keys()))}")
    obj = model.__new__(model)
    obj._state = ModelState()
    state = obj.__dict__
    state.update(fixed)
    for name, default in made:
        if name not in values:
            state[name] = default()
    state.update(values)
    return obj


def _build_spec(model):
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        raise TypeError(f"build() skips Model.__init__, and {model.__name__} has init signal receivers")
    fixed, made = {}, []
    for field in model._meta.concrete_fields:
        if not isinstance(model.__dict__.get(field.attname), DeferredAttribute):
            raise TypeError(f"build() cannot set {model.__name__}.{field.attname}: it has its own descriptor")
        if field.has_default() and callable(field.default):
            made.append((field.attname, field.default))
            fixed[field.attname] = None
        else:
            fixed[field.attname] = field.get_default()
    return fixed, made
