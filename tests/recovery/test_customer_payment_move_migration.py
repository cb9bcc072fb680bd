"""recovery 0009/0010: Customer and Payment move from payments to recovery without touching their rows.

A database migrated by the releases before the move holds customers, payments,
what points at them (failures, messages, the sandbox's ledger), staff permissions
and audit entries; after migrating forward every one of them is read through the
recovery app's models, unchanged.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# The last migrations before the move, of every app whose models point at a payment.
BEFORE = [
    ("payments", "0011_payment_provider_from_registry"),
    ("recovery", "0008_retry_policy_defaults_payday_alignment_28_day_window"),
    ("notifications", "0001_initial"),
]
# The move itself: state-only migrations, so the tables are exactly as BEFORE left them.
MOVE = [
    ("payments", "0012_customer_and_payment_moved_to_recovery"),
    ("recovery", "0010_content_types_and_audit_follow_customer_and_payment"),
    ("notifications", "0002_payment_and_customer_live_in_recovery"),
]
WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def _tables() -> dict[str, list[tuple]]:
    """Every column of the two tables, as PostgreSQL describes them, and their indexes and constraints."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name IN ('payments_payment', 'payments_customer') ORDER BY 1, 2"
        )
        columns = cursor.fetchall()
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('payments_payment', 'payments_customer') ORDER BY 1, 2"
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text IN ('payments_payment', 'payments_customer') "
            "   OR confrelid::regclass::text IN ('payments_payment', 'payments_customer') ORDER BY 1, 2"
        )
        constraints = cursor.fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints}


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_are_read_through_recovery_after_it():
    executor = MigrationExecutor(connection)
    after = executor.loader.graph.leaf_nodes()
    schema_after = _tables()
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    schema_before = _tables()

    org = old.get_model("tinko", "Organization").objects.create(name="Before", slug="before-the-move")
    customer = old.get_model("payments", "Customer").objects.create(
        organization=org, key="id:cus_1", external_id="cus_1", email="ana@example.com", name="Ana"
    )
    payment = old.get_model("payments", "Payment").objects.create(
        organization=org, reference="inv_1", provider="sandbox", customer=customer, amount=1999, currency="EUR",
        card_brand="visa", card_last4="4242", status="recovering", first_failed_at=WHEN, last_failed_at=WHEN,
    )
    old.get_model("recovery", "FailureEvent").objects.create(
        organization=org, payment=payment, source="api", external_id="evt_1", occurred_at=WHEN, code="card_declined",
        decline_code="insufficient_funds",
    )
    old.get_model("notifications", "Notification").objects.create(
        organization=org, payment=payment, customer=customer, channel="email", kind="payment_failed",
        recipient="ana@example.com",
    )
    old.get_model("payments", "SandboxCharge").objects.create(
        organization=org, payment=payment, idempotency_key="k1", charge_id="ch_1", amount=1999, currency="EUR",
        status="declined",
    )
    old.get_model("tinko", "AuditEvent").objects.create(
        organization=org, action="payment.cancelled", target_type="payments.payment", target_id=str(payment.pk),
    )
    ContentType = old.get_model("contenttypes", "ContentType")
    Permission = old.get_model("auth", "Permission")
    payment_type, _ = ContentType.objects.get_or_create(app_label="payments", model="payment")
    view_payment, _ = Permission.objects.get_or_create(
        content_type=payment_type, codename="view_payment", defaults={"name": "Can view payment"}
    )
    staff = old.get_model("tinko", "User").objects.create(email="staff@tinko.test", is_staff=True)
    staff.user_permissions.add(view_payment)

    executor = MigrationExecutor(connection)
    executor.migrate(MOVE)
    # Nothing in the database's schema moved: same columns, indexes and constraints.
    assert _tables() == schema_before
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps
    assert _tables() == schema_after
    Payment = new.get_model("recovery", "Payment")
    moved = Payment.objects.select_related("customer").get(reference="inv_1")
    assert (moved.pk, moved.amount, moved.currency, moved.status) == (payment.pk, 1999, "EUR", "recovering")
    assert moved.customer.pk == customer.pk and moved.customer.email == "ana@example.com"
    assert new.get_model("recovery", "FailureEvent").objects.get(external_id="evt_1").payment_id == payment.pk
    message = new.get_model("notifications", "Notification").objects.get(payment=moved)
    assert message.customer_id == customer.pk
    assert new.get_model("payments", "SandboxCharge").objects.get(charge_id="ch_1").payment_id == payment.pk
    # The audit entry and the staff member's permission follow the model to its new app.
    assert new.get_model("tinko", "AuditEvent").objects.get(target_id=str(payment.pk)).target_type == "recovery.payment"
    moved_type = new.get_model("contenttypes", "ContentType").objects.get(pk=payment_type.pk)
    assert (moved_type.app_label, moved_type.model) == ("recovery", "payment")
    granted = new.get_model("tinko", "User").objects.get(pk=staff.pk).user_permissions.get()
    assert (granted.content_type.app_label, granted.codename) == ("recovery", "view_payment")
