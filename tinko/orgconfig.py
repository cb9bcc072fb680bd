"""An organization's configuration that every ingested report reads, kept in this process between requests.

Ingestion reads, for each report, the organization's default retry policy, its
active PSP accounts and its active webhook endpoints: three statements and their
rows converted to objects, about a sixth of a single report's CPU, for values
that change a few times a month. They are cached here, per organization, under
``Organization.config_version``.

Why that is correct: PostgreSQL raises the version in the organization's own row
in the same transaction as any insert, update or delete of the rows they come
from (the triggers of migrations tinko 0007, recovery 0014, payments 0014 and
notifications 0004), whatever makes the change: ``save()``, a queryset
``update()``, raw SQL, another process. An API request reads its organization
with its key (authentication does it anyway), so it knows the current version at
no cost, and a value cached under an older version is never used again: a changed
setting takes effect from the next request on, in every process. (A request that
read the version just before a change commits may still use the value from
before it, as it would have had it run a moment earlier.)

Only code running inside :func:`pinned` uses the cache (the ingestion endpoints);
everything else reads the database as before. Values are shared by the threads of
the process: callers must not change them. SQLite (local mode) has no triggers
here, so nothing is cached there.
"""

from __future__ import annotations

import contextlib
import contextvars

from django.db import connection

# organization id -> (config_version, {name: value}); only the newest version seen is kept.
_entries: dict[int, tuple[int, dict]] = {}
# Beyond this many organizations the cache starts again (memory stays bounded).
MAX_ORGANIZATIONS = 5_000

_pin: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("tinko_orgconfig_pin", default=None)


@contextlib.contextmanager
def pinned(organization):
    """Within the block, :func:`cached` answers for ``organization`` from this process under the version
    the organization was read with (read it in the same request, e.g. with the API key)."""
    version = getattr(organization, "config_version", None)
    if version is None or connection.vendor != "postgresql":
        yield
        return
    token = _pin.set((organization.pk, version))
    try:
        yield
    finally:
        _pin.reset(token)


def cached(organization_id: int, name: str, load):
    """``load()``, or what it returned before under the same configuration version (inside :func:`pinned`)."""
    pin = _pin.get()
    if pin is None or pin[0] != organization_id:
        return load()
    version = pin[1]
    entry = _entries.get(organization_id)
    if entry is None or entry[0] != version:
        if entry is not None and entry[0] > version:
            # Another request already saw a newer version: this one read its organization before the change.
            return load()
        if len(_entries) >= MAX_ORGANIZATIONS:
            _entries.clear()
        entry = _entries[organization_id] = (version, {})
    values = entry[1]
    try:
        return values[name]
    except KeyError:
        value = values[name] = load()
        return value


def forget() -> None:
    """Empty this process's cache (tests)."""
    _entries.clear()


# The trigger function the apps' migrations attach to the tables these values come from.
TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION tinko_org_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE tinko_organization SET config_version = config_version + 1 WHERE id = OLD.organization_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.organization_id IS DISTINCT FROM OLD.organization_id) THEN
        UPDATE tinko_organization SET config_version = config_version + 1 WHERE id = NEW.organization_id;
    END IF;
    RETURN NULL;
END
$$;
"""


def _on_postgresql(*statements: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


def function_operations():
    """Migration operations that create (and on the way back drop) :data:`TRIGGER_FUNCTION` (PostgreSQL)."""
    from django.db import migrations

    return [migrations.RunPython(_on_postgresql(TRIGGER_FUNCTION),
                                 _on_postgresql("DROP FUNCTION IF EXISTS tinko_org_config_changed()"), elidable=False)]


def trigger_operations(table: str):
    """Migration operations that raise the organization's config_version on every change of ``table``'s rows
    (PostgreSQL; nothing elsewhere). ``table`` has an ``organization_id`` column."""
    from django.db import migrations

    name = f"{table}_org_config"
    drop = f'DROP TRIGGER IF EXISTS "{name}" ON "{table}"'
    create = (f'CREATE TRIGGER "{name}" AFTER INSERT OR UPDATE OR DELETE ON "{table}" '
              "FOR EACH ROW EXECUTE FUNCTION tinko_org_config_changed()")
    return [migrations.RunPython(_on_postgresql(drop, create), _on_postgresql(drop), elidable=False)]
