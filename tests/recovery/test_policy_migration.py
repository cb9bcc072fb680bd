"""Migration 0005: a policy of the old shape ("retries with backoff, then messages") becomes the same schedule in steps."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("recovery", "0004_attempt_psp_calls")]
AFTER = [("recovery", "0006_retry_policy_drop_backoff_settings")]


def r(seconds):
    return {"action": "recharge", "after_seconds": seconds}


def m(seconds):
    return {"action": "message", "after_seconds": seconds, "channel": ""}


@pytest.fixture
def latest_schema_after():
    """Back to every app's latest migration afterwards: later tests need the columns added after AFTER."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest_schema_after")
def test_existing_policies_become_equivalent_steps():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    Organization = old_apps.get_model("tinko", "Organization")
    RetryPolicy = old_apps.get_model("recovery", "RetryPolicy")
    org = Organization.objects.create(name="Old", slug="old-policies")
    RetryPolicy.objects.create(
        organization=org, name="Old default", is_default=True, max_retries=3, initial_delay_seconds=3600,
        backoff_multiplier=3, max_delay_seconds=5 * 3600, max_notifications=2, notification_interval_seconds=86400,
        notify_on_hard_decline=True, category_overrides={"card_declined": {"max_retries": 1, "initial_delay_seconds": 600}},
    )
    RetryPolicy.objects.create(
        organization=org, name="Quiet", max_retries=0, max_notifications=0, notify_on_hard_decline=False,
        category_overrides={},
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps
    Migrated = new_apps.get_model("recovery", "RetryPolicy")
    old_default = Migrated.objects.get(name="Old default")
    quiet = Migrated.objects.get(name="Quiet")

    # 1 h, 3 h, then 9 h capped at 5 h; then the two messages a day apart.
    assert old_default.steps["insufficient_funds"] == [r(3600), r(3 * 3600), r(5 * 3600), m(0), m(86400)]
    assert old_default.steps["card_declined"] == [r(600), m(0), m(86400)]
    assert old_default.steps["expired_card"] == [m(0), m(86400)]
    assert old_default.steps["do_not_retry"] == [m(0)]
    assert old_default.steps["unknown"] == []
    assert "fraud_or_stolen" not in old_default.steps
    assert quiet.steps["insufficient_funds"] == [] and quiet.steps["do_not_retry"] == []
    assert not hasattr(old_default, "max_retries")
