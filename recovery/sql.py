"""Set-based writes for PostgreSQL: one statement for a thousand rows.

Ingestion writes customers, payments, events and attempts for up to 1,000
reports per request. A multi-row INSERT (``bulk_create``) spends most of its
time adapting each of its ~20,000 parameters; ``COPY`` with ids drawn from the
sequences up front takes a tenth of that. ``bulk_update`` builds a ``CASE``
per field whose cost grows with rows². Callers keep an ORM path for SQLite
(local mode), where batches are small.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import JSONField
from psycopg.types.json import Jsonb

MAX_PARAMETERS = 60_000  # PostgreSQL allows 65,535 per statement


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _adapters(fields):
    """Per column: how a plain Python value becomes a driver value (only JSON needs wrapping)."""
    adapters = []
    for field in fields:
        if isinstance(field, JSONField):
            encoder = field.encoder
            adapters.append(lambda value, encoder=encoder: connection.ops.adapt_json_value(value, encoder))
        else:
            adapters.append(None)
    return adapters


def update_rows(model, objs, field_names: list[str]) -> None:
    """Save ``field_names`` of many rows in one ``UPDATE … FROM (VALUES …)``.

    Not ``bulk_update()``: it builds a ``CASE WHEN pk=… THEN …`` per field whose
    cost grows with rows² (in Python and in PostgreSQL): 1,000 payments took
    over 10 s. Values go through each field's own ``get_db_prep_save`` and are
    cast to its column type, as ``bulk_update()`` would do.
    """
    objs = list(objs)
    if not objs:
        return
    if not is_postgresql():
        # SQLite (local mode) has no ``::`` casts; its batches are small anyway.
        model._default_manager.bulk_update(objs, field_names)
        return
    fields = [model._meta.get_field(name) for name in field_names]
    pk = model._meta.pk
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in [pk, *fields])
    assignments = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}::{f.db_type(connection)}" for f in fields)
    row = "(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"
    chunk = MAX_PARAMETERS // (len(fields) + 1)
    adapters = _adapters(fields)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), chunk):
            part = objs[start:start + chunk]
            params = []
            for obj in part:
                params.append(obj.pk)
                for f, adapt in zip(fields, adapters):
                    value = getattr(obj, f.attname)
                    params.append(value if adapt is None else adapt(value))
            cursor.execute(
                f"UPDATE {qn(model._meta.db_table)} AS t SET {assignments} "
                f"FROM (VALUES {', '.join([row] * len(part))}) AS v({columns}) "
                f"WHERE t.{qn(pk.column)} = v.{qn(pk.column)}::{pk.db_type(connection)}",
                params,
            )


def allocate_ids(counts: dict) -> dict:
    """Primary keys for new rows, drawn from each model's sequence in one round trip: {model: [ids]}."""
    wanted = [(model, n) for model, n in counts.items() if n]
    if not wanted:
        return {model: [] for model in counts}
    parts, params = [], []
    for model, n in wanted:
        parts.append("(SELECT array_agg(nextval(pg_get_serial_sequence(%s, 'id'))) FROM generate_series(1, %s))")
        params.extend([model._meta.db_table, n])
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        arrays = cursor.fetchone()
    ids = {model: [] for model in counts}
    for (model, _), array in zip(wanted, arrays):
        ids[model] = list(array)
    return ids


def copy_objects(model, objs) -> None:
    """``COPY`` instances that already have their ids (from :func:`allocate_ids`) into the model's table.

    The fastest way to write many rows: a tenth of the time of a multi-row
    INSERT, which spends it adapting every parameter. A unique violation
    raises Django's IntegrityError like any other write.
    """
    if not objs:
        return
    fields = list(model._meta.concrete_fields)
    adapters = []
    for field in fields:
        if isinstance(field, JSONField):
            adapters.append(lambda value: None if value is None else Jsonb(value))
        else:
            adapters.append(None)
    qn = connection.ops.quote_name
    statement = f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
    attnames = [f.attname for f in fields]
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(statement) as copy:
            for obj in objs:
                copy.write_row(
                    [getattr(obj, name) if adapt is None else adapt(getattr(obj, name)) for name, adapt in zip(attnames, adapters)]
                )
    for obj in objs:
        obj._state.adding = False


# Up to this many new rows go in with one INSERT statement (one round trip for
# every table); more go in with COPY, table by table.
SMALL_WRITE = 40


def write_new(groups) -> None:
    """Insert new instances that already have their ids: ``groups`` is [(model, objs), ...].

    A few rows (a single report) take one statement with an INSERT per table
    chained as data-modifying CTEs; many rows (a batch) take a COPY per table.
    Foreign keys are checked at commit (Django creates them DEFERRABLE
    INITIALLY DEFERRED), so the order of the tables does not matter.
    """
    groups = [(model, objs) for model, objs in groups if objs]
    if sum(len(objs) for _, objs in groups) > SMALL_WRITE:
        for model, objs in groups:
            copy_objects(model, objs)
        return
    if not groups:
        return
    qn = connection.ops.quote_name
    inserts, params = [], []
    for model, objs in groups:
        fields = list(model._meta.concrete_fields)
        adapters = [
            (lambda value: None if value is None else Jsonb(value)) if isinstance(f, JSONField) else None for f in fields
        ]
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        inserts.append(
            f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * len(objs))}"
        )
        for obj in objs:
            for field, adapt in zip(fields, adapters):
                value = getattr(obj, field.attname)
                params.append(value if adapt is None else adapt(value))
    *ctes, last = inserts
    statement = (
        "WITH " + ", ".join(f"w{i} AS ({insert})" for i, insert in enumerate(ctes)) + " " + last if ctes else last
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
    for _, objs in groups:
        for obj in objs:
            obj._state.adding = False


def fetch(model, where: str, params, *, lock: bool = False) -> list:
    """Instances of ``model`` for a raw WHERE clause, every concrete column, JSON decoded as the ORM would.

    For the ingestion hot path, where building a QuerySet costs more than the
    query; ``lock`` adds ``FOR UPDATE``.
    """
    fields = list(model._meta.concrete_fields)
    qn = connection.ops.quote_name
    statement = (
        f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(model._meta.db_table)} WHERE {where}"
        + (" FOR UPDATE" if lock else "")
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    attnames = [f.attname for f in fields]
    json_fields = [i for i, f in enumerate(fields) if isinstance(f, JSONField)]
    instances = []
    for row in rows:
        values = list(row)
        for i in json_fields:
            if values[i] is not None:
                values[i] = fields[i].from_db_value(values[i], None, connection)
        instances.append(model.from_db(connection.alias, attnames, values))
    return instances


_BUILD_FIELDS: dict = {}


def build(model, **values):
    """A new, unsaved instance from column values (attnames: ``payment_id``, not ``payment``).

    Positional construction skips ``Model.__init__``'s keyword handling and
    related-object descriptors: a third of the cost, which matters for the
    four thousand instances of a batch. Missing fields take their defaults.
    """
    fields = _BUILD_FIELDS.get(model)
    if fields is None:
        fields = _BUILD_FIELDS[model] = [(f.attname, f) for f in model._meta.concrete_fields]
    args = [values.pop(name) if name in values else field.get_default() for name, field in fields]
    if values:
        raise TypeError(f"{model.__name__} has no columns {', '.join(values)}")
    return model(*args)
