"""Ingestion writes with COPY on PostgreSQL and with the ORM elsewhere (SQLite in local mode): same outcome."""

from __future__ import annotations

import pytest

from recovery.ingestion import record_failures
from recovery.models import Customer, FailureEvent, Payment, RecoveryAttempt
from recovery.reports import parse_report
from tests.recovery.conftest import report
from tinko import bulk

pytestmark = pytest.mark.django_db


def reports():
    return [
        parse_report(r)
        for r in [
            report(event_id="e1", reference="order-1"),
            report(event_id="e2", reference="order-2", failure={"decline_code": "expired_card"},
                   customer={"id": "cus_2", "email": "b@example.com", "phone": "+14155550123"}),
            report(event_id="e3", reference="order-1", failure={"decline_code": "do_not_honor"},
                   customer={"id": "cus_1", "name": "Ada K."}),
            report(event_id="e4", reference="order-3", customer=None, payment_method=None, provider="stripe",
                   failure={"message": "Card reported stolen"}),
            report(event_id="e1", reference="order-1"),  # duplicate within the batch
        ]
    ]


def snapshot(org):
    payments = {
        p.reference: (p.status, p.category, p.failure_count, p.amount, p.card_last4, p.status_reason,
                      p.customer.key if p.customer else None, p.policy_id is not None)
        for p in Payment.objects.filter(organization=org)
    }
    events = sorted(
        (e.external_id, e.payment.reference, e.category, e.action, e.reason) for e in FailureEvent.objects.filter(organization=org)
    )
    attempts = sorted(
        (a.payment.reference, a.sequence, a.kind, a.channel, a.status, a.reason)
        for a in RecoveryAttempt.objects.filter(organization=org)
    )
    customers = sorted(
        (c.key, c.external_id, c.email, c.phone, c.name) for c in Customer.objects.filter(organization=org)
    )
    return payments, events, attempts, customers


@pytest.fixture
def other_org(other_org, org):
    # Plans depend on the organization's time zone (quiet hours): make the two alike.
    other_org.timezone = org.timezone
    other_org.save()
    return other_org


def test_copy_path_is_taken_on_postgresql():
    assert bulk.is_postgresql()


def test_both_paths_record_the_same_rows(org, other_org, monkeypatch):
    fast = record_failures(organization=org, reports=reports())
    with monkeypatch.context() as m:
        m.setattr(bulk, "is_postgresql", lambda: False)
        slow = record_failures(organization=other_org, reports=reports())

    assert [r.duplicate for r in fast] == [r.duplicate for r in slow] == [False, False, False, False, True]
    assert snapshot(org) == snapshot(other_org)
    assert all(r.event.pk for r in fast + slow)


def test_second_batch_updates_known_rows_the_same_way(org, other_org, monkeypatch):
    second = [parse_report(report(event_id="e9", reference="order-2", amount=100,
                                  customer={"id": "cus_2", "name": "Bea"}, failure={"decline_code": "insufficient_funds"}))]
    record_failures(organization=org, reports=reports())
    record_failures(organization=org, reports=second)
    with monkeypatch.context() as m:
        m.setattr(bulk, "is_postgresql", lambda: False)
        record_failures(organization=other_org, reports=reports())
        record_failures(organization=other_org, reports=second)

    assert snapshot(org) == snapshot(other_org)
    customer = Customer.objects.get(organization=org, key="id:cus_2")
    assert (customer.name, customer.email) == ("Bea", "b@example.com")


@pytest.mark.parametrize("provider", ["stripe", "razorpay"])
def test_planning_a_batch_of_psp_payments_reads_the_connected_accounts_once(org, provider):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(count: int) -> int:
        batch = [parse_report(report(provider=provider, customer={"id": f"cus_{provider}_{count}_{i}"})) for i in range(count)]
        with CaptureQueriesContext(connection) as captured:
            record_failures(organization=org, reports=batch, source="api")
        accounts = [q for q in captured.captured_queries if "payments_provideraccount" in q["sql"]]
        assert len(accounts) == 1
        return len(captured.captured_queries)

    # Both batches are large enough for the COPY path (tinko.bulk.SMALL_WRITE): same statements, any size.
    queries_for(50)  # the first batch also loads what is cached afterwards (rules, policy)
    assert queries_for(60) == queries_for(150)
    assert Payment.objects.filter(organization=org, provider=provider).count() == 260


def test_a_batch_classifies_each_distinct_failure_once_and_every_event_as_alone(org, other_org, monkeypatch):
    from recovery import ingestion

    calls = []
    classify = ingestion.classify
    monkeypatch.setattr(ingestion, "classify", lambda **kwargs: calls.append(kwargs) or classify(**kwargs))
    failures = [{"decline_code": "insufficient_funds"}, {"decline_code": "expired_card"}]
    batch = [report(event_id=f"b{i}", reference=f"order-{i}", failure=failures[i % 2]) for i in range(40)]
    batch += [report(event_id="mc", reference="order-mc", failure={"decline_code": "insufficient_funds"},
                     payment_method={"brand": "mastercard", "last4": "4444"})]
    record_failures(organization=org, reports=[parse_report(r) for r in batch])

    assert len(calls) == 3  # two failures on Visa, one on Mastercard (the brand is part of what decides)
    for r in batch:  # each event as if it had come alone
        record_failures(organization=other_org, reports=[parse_report(r)])
    assert snapshot(org)[1] == snapshot(other_org)[1]


def test_planning_a_batch_asks_which_channels_are_enabled_once(org, monkeypatch):
    from recovery import planning

    asked = []
    enabled = planning.enabled_channels
    monkeypatch.setattr(planning, "enabled_channels", lambda: asked.append(1) or enabled())
    batch = [parse_report(report(reference=f"order-{i}", failure={"decline_code": "expired_card"})) for i in range(30)]
    results = record_failures(organization=org, reports=batch)

    assert len(asked) == 1
    assert {r.next_attempt.channel for r in results} == {"email"}  # the customers are still reached by e-mail
