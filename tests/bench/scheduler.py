"""Benchmark 3: the scheduler's claim (``recovery.dispatch.claim_due_attempts``) over 1,000,000 future attempts.

The attempts are bulk-loaded with ``INSERT … SELECT generate_series`` (PAYMENTS
payments × ATTEMPTS_PER_PAYMENT attempts, sequences 1..n, all due in 1 to 30
days), then ANALYZEd as autovacuum would. Measured:

- a tick with nothing due: ``claim_due_attempts()`` called many times; median and p95;
- 10,000 made due (spread over the table): one ``claim_due_attempts()``, which
  claims them in batches and sends one Dramatiq message per attempt to Redis
  after each batch commits; wall time, and the messages found in the queue.
"""

from __future__ import annotations

import statistics
import time

from django.db import connection

from tests.bench import common

PAYMENTS = 100_000
ATTEMPTS_PER_PAYMENT = 10
DUE = 10_000


def load(organization) -> float:
    """Insert the payments and attempts; seconds taken."""
    policy_id = organization.retry_policies.get(is_default=True).pk
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO payments_payment (
                organization_id, reference, provider, provider_payment_id, amount, currency, description, metadata,
                card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint, status, category,
                status_reason, limit_code, failure_count, first_failed_at, last_failed_at, recovery_ends_at, policy_id,
                recovered_channel, provider_customer_id, provider_payment_method_id, holdout_group, created_at,
                updated_at)
            SELECT %s, 'sched-' || i, 'sandbox', '', 1000 + i %% 5000, 'USD', '', '{}'::jsonb,
                   'visa', '4242', 12, 2030, 'fp_sched_' || i, 'recovering', 'insufficient_funds',
                   'bench', '', 1, now() - interval '1 hour', now() - interval '1 hour', now() + interval '21 days', %s,
                   '', '', '', '', now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [organization.pk, policy_id, PAYMENTS],
        )
        cursor.execute(
            """
            INSERT INTO recovery_recoveryattempt (
                organization_id, payment_id, sequence, kind, channel, message_kind, status, scheduled_for, reason,
                limit_code, idempotency_key, card_key, amount, currency, claims, psp_calls, outcome, result, created_at)
            SELECT p.organization_id, p.id, s, 'auto_retry', 'psp', '', 'scheduled',
                   now() + interval '1 day' + (random() * interval '29 days'), 'bench', '',
                   'tinko_att_' || md5(p.id::text || '-' || s), 'fp:' || p.card_fingerprint, p.amount, p.currency,
                   0, 0, '', '{}'::jsonb, now()
            FROM payments_payment p CROSS JOIN generate_series(1, %s) AS s
            WHERE p.organization_id = %s AND p.reference LIKE 'sched-%%'
            """,
            [ATTEMPTS_PER_PAYMENT, organization.pk],
        )
        cursor.execute("ANALYZE payments_payment")
        cursor.execute("ANALYZE recovery_recoveryattempt")
    return time.perf_counter() - start


def make_due(count: int) -> None:
    """Make ``count`` scheduled attempts, spread evenly over the table, due a minute ago."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM recovery_recoveryattempt WHERE status = 'scheduled'")
        (total,) = cursor.fetchone()
        step = max(1, total // count)
        cursor.execute(
            """
            UPDATE recovery_recoveryattempt SET scheduled_for = now() - interval '1 minute'
            WHERE id IN (SELECT id FROM recovery_recoveryattempt WHERE status = 'scheduled' AND id %% %s = 0
                         ORDER BY id LIMIT %s)
            """,
            [step, count],
        )


def explain_idle_claim() -> str:
    """EXPLAIN ANALYZE of the claim's query when nothing is due, for the report."""
    from django.utils import timezone

    from recovery.models import AttemptStatus, RecoveryAttempt

    qs = (
        RecoveryAttempt.objects.select_for_update(skip_locked=True)
        .filter(status=AttemptStatus.SCHEDULED, scheduled_for__lte=timezone.now())
        .order_by("scheduled_for").values_list("pk", flat=True)[:1000]
    )
    from django.db import transaction

    with transaction.atomic():
        return qs.explain(analyze=True)


def run(organization, *, idle_ticks: int = 300) -> dict:
    from recovery.dispatch import claim_due_attempts

    common.reset_broker()
    load_seconds = load(organization)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM recovery_recoveryattempt WHERE status = 'scheduled' AND scheduled_for > now()")
        (future,) = cursor.fetchone()
    print(f"    loaded {future:,} future attempts in {load_seconds:.1f} s", flush=True)

    for _ in range(20):  # warm-up: connection, plans, caches
        claim_due_attempts()
    timings = []
    for _ in range(idle_ticks):
        start = time.perf_counter()
        claimed = claim_due_attempts()
        timings.append((time.perf_counter() - start) * 1000)
        assert claimed == 0, claimed
    timings.sort()
    idle = {
        "median_ms": statistics.median(timings),
        "p95_ms": timings[int(0.95 * len(timings))],
        "max_ms": timings[-1],
    }
    print(f"    idle tick: median {idle['median_ms']:.2f} ms, p95 {idle['p95_ms']:.2f} ms, max {idle['max_ms']:.2f} ms "
          f"({idle_ticks} ticks)", flush=True)
    plan = explain_idle_claim()

    make_due(DUE)
    start = time.perf_counter()
    claimed = claim_due_attempts()
    due_seconds = time.perf_counter() - start
    messages = common.queued_messages("recovery")
    print(f"    claimed {claimed:,} due attempts and enqueued {messages:,} messages in {due_seconds:.3f} s", flush=True)
    common.reset_broker()
    return {"future": future, "load_s": load_seconds, "idle": idle, "claimed": claimed, "messages": messages,
            "due_s": due_seconds, "plan": plan}
