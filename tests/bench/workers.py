"""Benchmark 4: 10,000 due automatic retries against the sandbox PSP, run by ONE
``manage.py rundramatiq --processes 2 --threads N`` on Redis.

Setup: 10,000 failures ingested in-process (``recovery.ingestion.record_failures``,
sandbox provider, "insufficient funds"), so each payment has one planned
automatic retry; those are then made due now. Cards: 80 % succeed on re-charge
(4242, the payment is recovered), 20 % decline again (9995 insufficient funds,
0002 generic: the decline is classified and the payment re-planned). With the
worker idle and connected, the clock starts, ``claim_due_attempts()`` claims
and enqueues everything (the scheduler's job), and the clock stops when all
10,000 attempts are ``succeeded`` or ``failed``. Peak RSS (VmHWM) of every
process of the worker is read at the end.
"""

from __future__ import annotations

import random
import time

from django.db import connection

from tests.bench import common

RETRIES = 10_000
# last4 → share: 4242 succeeds, 9995 and 0002 decline (sandbox test cards).
CARDS = [("4242", 80), ("9995", 12), ("0002", 8)]


def prepare(organization) -> int:
    from recovery.ingestion import record_failures
    from recovery.reports import parse_report

    rng = random.Random("workers")
    cards = [c for c, _ in CARDS]
    weights = [w for _, w in CARDS]
    failure = {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}
    for start in range(0, RETRIES, 1000):
        reports = [
            parse_report(common.failure_report(
                f"work-{i}", rng, provider="sandbox", failure=failure, last4=rng.choices(cards, weights)[0]
            ))
            for i in range(start, start + 1000)
        ]
        record_failures(organization=organization, reports=reports)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE recovery_recoveryattempt SET scheduled_for = now() - interval '1 second' "
            "WHERE status = 'scheduled' AND kind = 'auto_retry'"
        )
        due = cursor.rowcount
        cursor.execute("ANALYZE recovery_recoveryattempt")
        cursor.execute("ANALYZE payments_payment")
    return due


def _counts() -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM recovery_recoveryattempt WHERE id <= %s GROUP BY status", [_max_id]
        )
        return dict(cursor.fetchall())


_max_id = 0


def _heartbeats() -> int:
    import os

    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return client.zcard(f"{os.environ['DRAMATIQ_NAMESPACE']}:__heartbeats__")


def run(organization, *, threads: int, timeout: float = 600) -> dict:
    global _max_id
    from recovery.dispatch import claim_due_attempts

    common.reset_broker()
    t = time.perf_counter()
    due = prepare(organization)
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM recovery_recoveryattempt")
        (_max_id,) = cursor.fetchone()
    print(f"    prepared {due:,} due automatic retries in {time.perf_counter() - t:.1f} s", flush=True)

    worker = common.start_process(
        [str(common.REPO / ".venv" / "bin" / "python"), "manage.py", "rundramatiq", "--processes", "2",
         "--threads", str(threads)],
        log_name="rundramatiq.log",
    )
    try:
        # Ready when both worker processes have registered with the broker.
        common.wait_until(lambda: _heartbeats() >= 2, timeout=60, interval=0.2, what="2 Dramatiq worker processes")
        time.sleep(1)
        start = time.perf_counter()
        claimed = claim_due_attempts()
        claim_seconds = time.perf_counter() - start
        done_states = {"succeeded", "failed"}

        def finished() -> bool:
            counts = _counts()
            return sum(n for s, n in counts.items() if s in done_states) >= due

        common.wait_until(finished, timeout=timeout, interval=0.25, what="all due attempts to finish")
        elapsed = time.perf_counter() - start
        counts = _counts()
        processes = {}
        for pid in [worker.pid, *common.descendants(worker.pid)]:
            try:
                processes[pid] = (common.cmdline(pid)[:90], common.mb(common.status_field(pid, "VmHWM")))
            except OSError:
                pass
    finally:
        common.stop_process(worker, timeout=60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM payments_payment WHERE reference LIKE 'work-%%' GROUP BY status")
        payments = dict(cursor.fetchall())
    print(f"    {due:,} retries finished in {elapsed:.1f} s (claim+enqueue {claim_seconds:.2f} s); attempts {counts}; "
          f"payments {payments}", flush=True)
    for pid, (cmd, rss) in processes.items():
        print(f"      pid {pid}: peak RSS {rss:.1f} MB  {cmd}")
    return {"due": due, "claimed": claimed, "elapsed": elapsed, "claim_s": claim_seconds, "attempts": counts,
            "payments": payments, "processes": processes, "threads": threads}
