"""tinko.bulk writes rows as Model.save() would store them: custom fields encrypted, auto timestamps set, JSON as JSON.

The model here is the tests' own (app label ``bulk_tests``, not installed, so
no migration knows it): its table is created inside each test's transaction.
The SQLite path runs in a child process on a temporary SQLite database, as
local mode does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from tests.ops.procs import DJANGO_SETUP, production_env, run_python
from tinko import bulk, crypto


class SealedTextField(models.TextField):
    """Encrypted at rest: what a bulk writer that skipped get_db_prep_save would store in the clear."""

    def get_db_prep_save(self, value, connection):
        return crypto.encrypt(value) if value else value

    def from_db_value(self, value, expression, connection):
        return crypto.decrypt(value) if value else value


class Note(models.Model):
    secret = SealedTextField(blank=True)
    data = models.JSONField(default=dict, null=True)
    label = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "bulk_tests"


JSON_VALUES = [{"a": [1, "x", None], "b": {"c": True}}, [], "text", 0, {"é": "ü"}, {}, {"empty": {}, "list": []}]


def write_and_read(n: int) -> dict:
    """Write ``n`` notes as dicts and ``n`` as instances (no ids), read them back: the facts the tests check."""
    given = datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt_timezone.utc)
    dicts = [{"secret": f"dict secret {i}", "data": JSON_VALUES[i % len(JSON_VALUES)], "label": "dict"} for i in range(n)]
    dicts[0]["created_at"] = given  # a row may carry its own time (imports, sample history)
    objs = [Note(secret=f"instance secret {i}", data=JSON_VALUES[i % len(JSON_VALUES)], label="obj") for i in range(n)]
    before = timezone.now()
    bulk.insert([(Note, dicts), (Note, objs)])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {Note._meta.db_table}")
        stored = [row[0] for row in cursor.fetchall()]
    read = {note.pk: note for note in bulk.fetch(Note, Q(label__in=["dict", "obj"]), order_by="id")}
    orm = {note.pk: note for note in Note.objects.all()}
    return {
        "ids_given": all(d["id"] for d in dicts) and all(o.pk for o in objs),
        "ids_distinct": len({d["id"] for d in dicts} | {o.pk for o in objs}) == 2 * n,
        "clear_text_stored": sum("secret" in s for s in stored),
        "secrets_read": sorted(n.secret for n in read.values()) == sorted(
            [d["secret"] for d in dicts] + [o.secret for o in objs]),
        "orm_agrees": all(orm[pk].secret == note.secret and orm[pk].data == note.data for pk, note in read.items()),
        "json_round_trip": [read[d["id"]].data for d in dicts] == [d["data"] for d in dicts]
        and [read[o.pk].data for o in objs] == [o.data for o in objs],
        "given_time_kept": read[dicts[0]["id"]].created_at == given,
        "stamped": all(before <= note.updated_at <= timezone.now() for note in read.values())
        and all(before <= read[d["id"]].created_at for d in dicts[1:]),
        "instances_stamped": all(o.created_at is not None and o.updated_at is not None for o in objs),
        "no_matches": bulk.fetch(Note, Q(label__in=[])) == [],
        "or_and_not": sorted(n.label for n in bulk.fetch(Note, Q(label="dict") & ~Q(id=dicts[0]["id"]) | Q(id=objs[0].pk)))
        == ["dict"] * (n - 1) + ["obj"],
    }


EXPECTED = {
    "ids_given": True, "ids_distinct": True, "clear_text_stored": 0, "secrets_read": True, "orm_agrees": True,
    "json_round_trip": True, "given_time_kept": True, "stamped": True, "instances_stamped": True,
    "no_matches": True, "or_and_not": True,
}


@pytest.fixture
def note_table(db):
    with connection.schema_editor() as editor:
        editor.create_model(Note)
    yield
    # The test's transaction rolls the table back on PostgreSQL.


@pytest.mark.parametrize("n", [3, bulk.SMALL_WRITE], ids=["insert", "copy"])
def test_postgresql_writes_encrypt_stamp_and_keep_json(note_table, n):
    assert bulk.is_postgresql()
    assert write_and_read(n) == EXPECTED


def test_update_converts_values_like_save(note_table):
    notes = [Note(secret="old", data={"v": 1}) for _ in range(3)]
    bulk.insert([(Note, notes)])
    for i, note in enumerate(notes):
        note.secret, note.data = f"new {i}", {"v": [i]}
    bulk.update(Note, notes, ["secret", "data"])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {Note._meta.db_table}")
        assert not any("new" in row[0] for row in cursor.fetchall())
    assert sorted((n.secret, n.data["v"]) for n in Note.objects.all()) == [("new 0", [0]), ("new 1", [1]), ("new 2", [2])]


def test_update_with_a_condition_changes_only_the_rows_that_still_match_and_counts_them(note_table):
    notes = [Note(secret="old", label="mine") for _ in range(3)]
    bulk.insert([(Note, notes)])
    Note.objects.filter(pk=notes[1].pk).update(label="taken")  # changed by someone else meanwhile
    for note in notes:
        note.secret, note.data = "new", {"v": 2}
    assert bulk.update(Note, notes, ["secret", "data", "label"], where=Q(label="mine")) == 2
    stored = {n.pk: (n.secret, n.data, n.label) for n in Note.objects.all()}
    assert [stored[n.pk] for n in notes] == [("new", {"v": 2}, "mine"), ("old", {}, "taken"), ("new", {"v": 2}, "mine")]


def test_sqlite_local_mode_writes_encrypt_stamp_and_keep_json(tmp_path):
    code = DJANGO_SETUP + (
        "from django.db import connection\n"
        "from tests.core.test_bulk import Note, write_and_read\n"
        "assert connection.vendor == 'sqlite', connection.vendor\n"
        "with connection.schema_editor() as editor:\n"
        "    editor.create_model(Note)\n"
        "print(sorted(write_and_read(5).items()))\n"
    )
    done = run_python(code, production_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(sorted(EXPECTED.items()))


def test_rows_without_a_timestamp_get_the_same_write_time(note_table):
    objs = [Note(label="x") for _ in range(5)]
    bulk.insert([(Note, objs)])
    assert len({o.created_at for o in objs}) == 1
    assert timezone.now() - objs[0].created_at < timedelta(minutes=1)


def test_build_makes_what_the_constructor_makes():
    """build() fills __dict__ itself: the instance must equal Note(**values), each with its own mutable default."""
    built = [bulk.build(Note, label="b", secret="s"), bulk.build(Note, label="b", secret="s")]
    made = Note(label="b", secret="s")
    fields = [f.attname for f in Note._meta.concrete_fields]
    assert all([getattr(b, name) for name in fields] == [getattr(made, name) for name in fields] for b in built)
    assert built[0].data == {} and built[0].data is not built[1].data
    assert built[0]._state.adding and built[0]._state.db is None
    with pytest.raises(TypeError, match="no columns nickname"):
        bulk.build(Note, nickname="x")


@pytest.mark.django_db
def test_fetch_together_is_each_fetch_and_the_ids_in_one_round_trip(org, other_org):
    from django.test.utils import CaptureQueriesContext

    from recovery.models import Customer, Payment

    first = Customer.objects.create(organization=org, key="id:a", email="a@example.com")
    second = Customer.objects.create(organization=org, key="id:b", email="b@example.com")
    Customer.objects.create(organization=other_org, key="id:a")
    queries = [
        (Customer, Q(organization_id=org.pk, key__in=["id:a", "id:b"]), "key", True),  # two rows
        (Payment, Q(organization_id=org.pk, reference__in=["none"]), "reference", True),  # no row
    ]
    with CaptureQueriesContext(connection) as captured:
        (customers, payments), ids = bulk.fetch_together(queries, counts={Customer: 2, Payment: 1})

    assert len(captured) == 1
    assert [c.pk for c in customers] == [first.pk, second.pk]
    assert customers[0].email == "a@example.com" and customers[0]._state.adding is False
    assert payments == []
    assert len(ids[Customer]) == 2 and len(ids[Payment]) == 1
    assert min(ids[Customer]) > second.pk
    assert [c.pk for c in bulk.fetch(Customer, Q(organization_id=org.pk), order_by="key")] == [c.pk for c in customers]


@pytest.mark.django_db
def test_fetch_together_gives_a_plain_statements_rows_once_each(org):
    from recovery.models import Customer

    Customer.objects.create(organization=org, key="id:a")
    Customer.objects.create(organization=org, key="id:b")
    customers = Customer.objects.filter(organization=org).order_by("key")
    queries = [
        (Customer, Q(organization_id=org.pk, key__in=["id:a", "id:b"]), "key", False),  # two rows: a product of 2 x 2
        bulk.Rows("SELECT id, key FROM payments_customer WHERE organization_id = %s", [org.pk], 2),
        bulk.Rows("SELECT id, key FROM payments_customer WHERE key = %s", ["none"], 2),  # no row
    ]

    (found, rows, none), ids = bulk.fetch_together(queries, counts={Customer: 1})

    assert [c.pk for c in found] == [c.pk for c in customers]
    assert sorted(rows) == [(c.pk, c.key) for c in customers]
    assert none == []
    assert len(ids[Customer]) == 1


@pytest.mark.django_db
def test_a_leading_statement_runs_once_in_the_first_fetch_together_of_its_block(org):
    from django.test.utils import CaptureQueriesContext

    from recovery.models import Customer
    from tinko.models import IdempotencyRecord

    query = [(IdempotencyRecord, Q(organization_id=org.pk, key__in=["k"]), "key", True)]
    insert = ("INSERT INTO tinko_idempotencyrecord (organization_id, key, request_hash, created_at) "
              "VALUES (%s, 'k', 'h', now()) ON CONFLICT (organization_id, key) DO NOTHING RETURNING id")
    with CaptureQueriesContext(connection) as captured, bulk.leading(insert, [org.pk]) as lead:
        assert not lead.done
        (found,), _ = bulk.fetch_together(query, counts={Customer: 1})
        (again,), _ = bulk.fetch_together(query, counts={Customer: 1})

    created = IdempotencyRecord.objects.get(organization=org, key="k")
    assert lead.done and lead.value == created.pk
    assert len(captured) == 2 and "INSERT" in captured[0]["sql"] and "INSERT" not in captured[1]["sql"]
    assert found == []  # the fetch's snapshot is the statement's: the row its leading statement inserted is not in it
    assert [c.pk for c in again] == [created.pk]

    with bulk.leading(insert, [org.pk]) as lead, pytest.raises(bulk.LeadingRefused):
        bulk.fetch_together(query, counts={Customer: 1})  # the row exists: no row returned
    assert lead.done and lead.value is None
    with CaptureQueriesContext(connection) as captured:
        bulk.fetch_together(query, counts={Customer: 1})  # outside the block: no leading statement
    assert "INSERT" not in captured[0]["sql"]


def test_attach_sets_what_the_foreign_key_descriptor_sets(db):
    from recovery.models import Customer, Payment
    from tinko.models import Organization

    organization = Organization.objects.create(name="Attach", slug="attach")
    stored = Customer.objects.create(organization=organization, key="id:c1")
    new = bulk.build(Customer, organization_id=organization.pk, key="id:c2")
    new.pk = 424242

    def facts(payment):
        return (payment.organization_id, payment.customer_id, payment._state.db,
                payment._state.fields_cache.get("customer"), payment._state.fields_cache.get("organization"))

    for customer in (stored, new, None):
        by_descriptor = bulk.build(Payment, organization_id=organization.pk, reference="r")
        by_attach = bulk.build(Payment, organization_id=organization.pk, reference="r")
        by_descriptor.organization, by_descriptor.customer = organization, customer
        bulk.attach(by_attach, "organization", organization)
        bulk.attach(by_attach, "customer", customer)
        assert facts(by_attach) == facts(by_descriptor)
        assert by_attach.customer is customer
    with pytest.raises(TypeError):
        bulk.attach(stored, "payments", None)
