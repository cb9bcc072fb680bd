"""CPU time and SQL statements per ingested event and per automatic retry, measured in-process.

    make bench-costs                                       # or:
    .venv/bin/python -m tests.bench.costs [--events 300] [--batches 3] [--retries 1000] [--profile batch]

Throughput on a shared machine moves with everything else running on it; what one
event or one retry costs does not. This runs the same code paths as benchmarks 1,
2 and 4 in one process (production settings, the bench database) and reports:

- single events: ``POST /api/v1/events/payment_failed`` (without and with an
  ``Idempotency-Key``) and the bare endpoint, through the whole Django stack
  (Django's test client: middleware, authentication, throttle, request log);
- batches of 1,000 through ``POST /api/v1/events/payment_failed/batch``;
- automatic retries: the worker's job (``recovery.tasks.run_attempts``, ten
  attempts per message as the scheduler sends them) against the sandbox PSP,
  80 % recovered and 20 % declined and re-planned, as in benchmark 4;
- first-notice e-mails: the same job for message attempts (``--messages``), as
  in the notifications benchmark up to the stored Notification (its delivery
  job is counted, not run).

For each: CPU milliseconds of this process per item (``time.process_time``:
Python and the driver), SQL statements per item, and, when PostgreSQL runs on
this machine, the CPU milliseconds its processes for the bench database spent
(its share of the same work: parsing, planning, COPY, index and foreign-key
upkeep, commit).
``--profile single|batch|retries|messages`` prints the top of a cProfile of that part; ``--statements`` the
SQL of one single-event request of each kind (the API log's rows are written by another thread of
the process, on its own connection, and are not among them; their CPU is in the figures).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import random
import sys
import time
import uuid

from tests.bench import common


def _client_headers(api_key: str, *, idempotent: bool = False) -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "127.0.0.1"}
    if idempotent:
        headers["HTTP_IDEMPOTENCY_KEY"] = str(uuid.uuid4())
    return headers


class Meter:
    """CPU seconds of this process and SQL statements on the default connection over a block."""

    def __init__(self, profile: bool = False):
        # CPU time, not wall time: waits on PostgreSQL would otherwise dominate.
        self.profile = cProfile.Profile(time.process_time) if profile else None

    def __enter__(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        # Django keeps the last 9,000 statements only: a thousand retries send more.
        connection.queries_log = collections.deque(maxlen=10_000_000)
        self.database = common.DatabaseCpu().start()  # before the capture: its own query is not counted
        self.capture = CaptureQueriesContext(connection)
        self.capture.__enter__()
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        if self.profile:
            self.profile.enable()
        return self

    def __exit__(self, *exc):
        if self.profile:
            self.profile.disable()
        self.cpu = time.process_time() - self.cpu
        self.wall = time.perf_counter() - self.wall
        self.capture.__exit__(*exc)
        self.database_cpu = self.database.stop()
        self.statements = len(self.capture.captured_queries)

    def print_profile(self, limit: int = 35) -> None:
        if self.profile:
            pstats.Stats(self.profile).sort_stats("cumulative").print_stats(limit)
            pstats.Stats(self.profile).sort_stats("tottime").print_stats(limit)


def _per(seconds, count):
    """Milliseconds per item, or None when not measured."""
    return None if seconds is None else seconds / count * 1000


def single(api_key: str, *, count: int, tag: str, profile: str, show_statements: bool = False) -> list[tuple]:
    from django.test import Client

    client = Client()
    rows = []
    for short, name, path, idempotent in (
        ("bare", "bare endpoint", "/bench/baseline", False),
        ("one", "single event", "/api/v1/events/payment_failed", False),
        ("key", "single event + Idempotency-Key", "/api/v1/events/payment_failed", True),
    ):
        rng = random.Random(f"{tag}-{short}")
        bodies = [json.dumps(common.failure_report(f"{tag}-{short}-{i}", rng)) for i in range(count + 20)]
        for body in bodies[:20]:  # warm-up
            client.post(path, body, content_type="application/json", **_client_headers(api_key, idempotent=idempotent))
        if show_statements:
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as captured:
                body = json.dumps(common.failure_report(f"{tag}-{short}-statements", rng))
                client.post(path, body, content_type="application/json", **_client_headers(api_key, idempotent=idempotent))
            print(f"\n  statements of one request, {name}:")
            for query in captured.captured_queries:
                print(f"    {query['sql'][:160]}")
        with Meter(profile and profile == "single" and path != "/bench/baseline" and not idempotent) as meter:
            for body in bodies[20:]:
                response = client.post(path, body, content_type="application/json",
                                       **_client_headers(api_key, idempotent=idempotent))
                assert response.status_code == 201, response.content[:300]
        rows.append((name, meter.cpu / count * 1000, meter.statements / count, meter.wall / count * 1000,
                     _per(meter.database_cpu, count)))
        meter.print_profile()
    return rows


def batch(api_key: str, *, count: int, tag: str, profile: str) -> list[tuple]:
    from django.test import Client

    from tests.bench.ingestion import batch_bodies

    client = Client()
    bodies = batch_bodies(count + 1, tag=f"{tag}-batch")
    client.post("/api/v1/events/payment_failed/batch", bodies[0], content_type="application/json",
                **_client_headers(api_key))
    with Meter(profile == "batch") as meter:
        for body in bodies[1:]:
            response = client.post("/api/v1/events/payment_failed/batch", body, content_type="application/json",
                                   **_client_headers(api_key))
            assert response.status_code == 200
            assert all(item["status"] == 201 for item in response.json()["results"])
    meter.print_profile()
    events = count * 1000
    return [("batch event (1,000 per request)", meter.cpu / events * 1000, meter.statements / events,
             meter.wall / events * 1000, _per(meter.database_cpu, events))]


def _claim(kind, due: int) -> list[int]:
    """The scheduler's claim of the due attempts of ``kind`` (recovery.dispatch), without sending the jobs."""
    from django.utils import timezone

    from recovery import transitions
    from recovery.dispatch import lease
    from recovery.models import AttemptStatus, RecoveryAttempt

    now = timezone.now()
    ids = sorted(RecoveryAttempt.objects.filter(
        status=AttemptStatus.SCHEDULED, kind=kind, scheduled_for__lte=now
    ).values_list("pk", flat=True))
    transitions.queue_attempts(ids, now=now, lease_until=now + lease())
    assert len(ids) == due, (len(ids), due)
    return ids


def retries(organization, *, count: int, profile: str) -> list[tuple]:
    from django.db import connection

    from recovery.models import AttemptKind
    from recovery.tasks import run_attempts
    from tests.bench import workers

    workers.RETRIES = count
    due = workers.prepare(organization)
    ids = _claim(AttemptKind.AUTO_RETRY, due)
    with Meter(profile == "retries") as meter:
        for start in range(0, len(ids), 10):
            run_attempts.fn(ids[start:start + 10])
    meter.print_profile()
    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM recovery_recoveryattempt WHERE id = ANY(%s) GROUP BY status", [ids])
        outcome = dict(cursor.fetchall())
    assert set(outcome) <= {"succeeded", "failed"}, outcome
    return [(f"retry ({outcome})", meter.cpu / due * 1000, meter.statements / due, meter.wall / due * 1000,
             _per(meter.database_cpu, due))]


def messages(organization, *, count: int, profile: str) -> list[tuple]:
    """The recovery job of benchmark "Notifications": first-notice e-mails' attempts run ten per job, as the
    scheduler sends them (respect checks, pay link, rendering, the stored Notification, the re-plan); the
    delivery jobs they enqueue after commit are counted, not sent (the e-mails' sending is not measured here)."""
    from django.db import connection

    from notifications import delivery
    from recovery.models import AttemptKind
    from recovery.tasks import run_attempts
    from tests.bench import notifications

    notifications.reset()
    due = notifications.prepare(organization, count)
    ids = _claim(AttemptKind.NOTIFICATION, due)
    enqueued = []
    send = delivery._enqueue
    delivery._enqueue = lambda ids, delay_ms=None: enqueued.extend(ids)
    try:
        with Meter(profile == "messages") as meter:
            for start in range(0, len(ids), 10):
                run_attempts.fn(ids[start:start + 10])
    finally:
        delivery._enqueue = send
    meter.print_profile()
    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM recovery_recoveryattempt WHERE id = ANY(%s) GROUP BY status", [ids])
        outcome = dict(cursor.fetchall())
    assert outcome == {"succeeded": due} and len(enqueued) == due, (outcome, len(enqueued))
    notifications.reset()
    return [(f"message's recovery job ({due} e-mails)", meter.cpu / due * 1000, meter.statements / due,
             meter.wall / due * 1000, _per(meter.database_cpu, due))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="single events per endpoint (default 300)")
    parser.add_argument("--batches", type=int, default=3, help="batches of 1,000 events (default 3)")
    parser.add_argument("--retries", type=int, default=1000, help="automatic retries (default 1,000)")
    parser.add_argument("--messages", type=int, default=1000, help="first-notice e-mails' recovery jobs (default 1,000)")
    parser.add_argument("--profile", default="", choices=["", "single", "batch", "retries", "messages"])
    parser.add_argument("--only", default="single,batch,retries,messages")
    parser.add_argument("--statements", action="store_true",
                        help="print the SQL statements of one single-event request of each kind (cut to 160 characters)")
    args = parser.parse_args(argv)
    common.configure()
    from tinko.wsgi import freeze_startup_objects

    freeze_startup_objects()  # as gunicorn.conf.py does in each web worker
    common.reset_data()
    merchant = common.merchant()
    tag = f"c{int(time.time())}"
    common.preload(merchant.organization, count=5000)
    rows = []
    only = args.only.split(",")
    try:
        if "single" in only:
            rows += single(merchant.api_key, count=args.events, tag=tag, profile=args.profile,
                           show_statements=args.statements)
        if "batch" in only:
            common.analyze_data()
            rows += batch(merchant.api_key, count=args.batches, tag=tag, profile=args.profile)
        if "retries" in only:
            common.reset_data()
            rows += retries(merchant.organization, count=args.retries, profile=args.profile)
        if "messages" in only:
            common.reset_data()
            rows += messages(merchant.organization, count=args.messages, profile=args.profile)
    finally:
        common.reset_data()
    print(f"\n  {'per item':<48}  {'CPU ms':>8}  {'statements':>10}  {'wall ms':>8}  {'PostgreSQL CPU ms':>17}")
    for name, cpu, statements, wall, database in rows:
        db = "-" if database is None else f"{database:.3f}"
        print(f"  {name:<48}  {cpu:8.3f}  {statements:10.2f}  {wall:8.2f}  {db:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
