"""Benchmarks of the console's Customers and Developers → Logs pages, and of what the API request log
costs single-event ingestion (the issue's targets for them).

    .venv/bin/python -m tests.bench.console            # or: make bench-console
    .venv/bin/python -m tests.bench.console --reuse --repeat 30

Runs in its own database (default ``tinko_bench_console``, created when missing; its
name must contain "bench": the data tables are emptied first). Loaded with PostgreSQL
``COPY``, then ``ANALYZE`` (as autovacuum would on a running system):

- one organization with ``--payments`` payments (1,000,000) of ``--customers``
  customers (300,000), created over a year, and a second organization with 50,000
  payments, so that every query has to scope by tenant;
- ``--logs`` logged API requests (1,000,000) for the first organization over 14 days
  (the default retention) and 100,000 for the second: realistic masked bodies,
  three keys, a mix of statuses (93 % 201, 3 % 200, 3.5 % 4xx, 0.3 % 429, 0.2 % 5xx),
  60 % of POSTs with an ``Idempotency-Key``.

1. **Customers list** and **Developers → Logs**: server time in-process with the
   production settings (DEBUG off) through the whole Django stack (middleware,
   session, template): the median of ``--repeat`` requests after 3 warm-ups, for the
   first page, the next page and each filter and search. Target ≤ 200 ms each.
2. **Logging overhead on single-event ingestion**: two gunicorns with the repo's
   ``gunicorn.conf.py`` (2 workers × 4 threads each), identical but for
   ``TINKO_API_LOG_ENABLED`` (true / false), serve ``POST /api/v1/events/payment_failed``
   to the closed-loop load generator of benchmark 1 (tests/bench/ingestion.py: 8
   threads, unique realistic reports). Phases alternate between the two servers,
   the order flipping every round, ``--ingest-rounds`` × ``--ingest-seconds`` each,
   so drift on a shared machine hits both alike. Reported: requests/s of each and
   the overhead ``rate(off) / rate(on) − 1`` over all rounds (and per round pair).
   Target ≤ 5 %. From the same phases, the workers' CPU time per request; then, in this
   process, the median server time of the same request with logging switched on and off
   between alternating blocks (database round trips included).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone as dt_timezone

LOG_TABLE = "tinko_apirequestlog"


def _configure():
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tinko_bench_console")
    # An access-log line per request would be measured too; production logs it to a collector.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from tests.bench import common

    common.configure()


def reset() -> None:
    from django.db import connection

    from tests.bench.common import DATA_TABLES

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")


def load_customers_and_payments(organization, *, payments: int, customers: int, seed: str) -> None:
    """The pages benchmark's loader, then customers spread over the year (it creates them all at one time)."""
    from django.db import connection

    from tests.bench.pages import load

    load(organization, payments=payments, customers=customers, seed=seed)
    start = datetime.now(dt_timezone.utc) - timedelta(days=365)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE payments_customer SET created_at = %s + (payments_customer.id - first.first_id) * %s, "
            "updated_at = %s + (payments_customer.id - first.first_id) * %s "
            "FROM (SELECT min(id) AS first_id FROM payments_customer WHERE organization_id = %s) AS first "
            "WHERE organization_id = %s",
            [start, timedelta(days=365) / customers, start, timedelta(days=365) / customers, organization.pk,
             organization.pk],
        )
        cursor.execute("ANALYZE payments_customer")


_PATHS = [  # (weight, method, path template, ok status)
    (85, "POST", "/api/v1/events/payment_failed", 201),
    (3, "POST", "/api/v1/events/payment_failed/batch", 200),
    (3, "GET", "/api/v1/payments", 200),
    (5, "POST", "/api/v1/payments/{ref}/recovery_link", 201),
    (2, "POST", "/api/v1/payments/{ref}/retry_now", 201),
    (1, "GET", "/api/v1/payments/{ref}", 200),
    (1, "POST", "/api/v1/payments/{ref}/cancel", 200),
]
_ERRORS = [(3.5, 422), (0.3, 429), (0.2, 503)]  # per cent of requests


def load_logs(organization, keys, *, count: int, seed: str) -> None:
    """COPY ``count`` logged API requests for ``organization`` over the last 14 days, newest last."""
    from django.db import connection

    from tests.bench.common import failure_report
    from tinko.api.request_log import mask_body

    rng = random.Random(seed)
    # Bodies as the middleware stores them (masked, compact); a few templates with the reference swapped in.
    templates = []
    for i in range(40):
        report = failure_report(f"REF{i}", rng)
        response = {"payment": {"reference": "REF", "status": "recovering", "category": "insufficient_funds"},
                    "next_attempt": {"kind": "auto_retry", "scheduled_for": "2026-12-05T10:00:00Z"}}
        templates.append((mask_body(json.dumps(report).replace(f"REF{i}", "{ref}")),
                          mask_body(json.dumps(response).replace('"REF"', '"{ref}"'))))
    error_body = mask_body(json.dumps({"error": {"type": "invalid_request", "message": "amount: must be positive",
                                                 "request_id": "x"}}))
    weights = [w for w, *_ in _PATHS]
    now = datetime.now(dt_timezone.utc)
    start = now - timedelta(days=14)
    step = timedelta(days=14) / count
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            f"COPY {LOG_TABLE} (organization_id, api_key_id, key_name, method, path, status, duration_ms, request_id, "
            "idempotency_key, request_body, response_body, created_at) FROM STDIN"
        ) as copy:
            for i in range(count):
                _, method, template, status = rng.choices(_PATHS, weights=weights)[0]
                ref = f"{seed}-{i:08d}"
                roll = rng.random() * 100
                for share, error_status in _ERRORS:
                    if roll < share:
                        status = error_status
                        break
                    roll -= share
                key = keys[0] if rng.random() < 0.8 else rng.choice(keys[1:])
                request_body, response_body = rng.choice(templates)
                copy.write_row((
                    organization.pk, key.pk, key.name, method, template.format(ref=ref), status,
                    rng.randint(8, 60) if status < 500 else rng.randint(1000, 5000), uuid.uuid4().hex,
                    str(uuid.uuid4()) if method == "POST" and rng.random() < 0.6 else "",
                    request_body.replace("{ref}", ref) if method == "POST" else "",
                    error_body if status >= 400 else response_body.replace("{ref}", ref),
                    start + step * i,
                ))
        cursor.execute(f"ANALYZE {LOG_TABLE}")


def _client(user):
    from django.test import Client

    # As behind the TLS proxy of tests/bench/settings.py (production settings redirect plain HTTP).
    client = Client(HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def _rows(client, prefix: str, scenarios, repeat: int) -> list[tuple]:
    from tests.bench.pages import _time

    rows = []
    for name, url in scenarios:
        median, status, size = _time(client, url, repeat)
        assert status == 200, (url, status)
        rows.append((f"{prefix}: {name}", median, 200.0, "ms", f"{size / 1024:.0f} KB HTML"))
        print(f"  {rows[-1][0]:<48} {median:7.1f} ms", flush=True)
    return rows


def bench_customers(organization, user, *, repeat: int) -> list[tuple]:
    from django.db.models import Count

    from payments import selectors
    from recovery.models import Customer, Payment

    client = _client(user)
    cursor = selectors.customer_page(selectors.filtered_customers(organization)).next_cursor
    customers = Customer.objects.filter(organization=organization)
    some = customers.order_by("pk")[customers.count() // 2]
    busy = (Payment.objects.filter(organization=organization).values("customer_id")
            .annotate(n=Count("pk")).order_by("-n")[:1].get())
    scenarios = [
        ("first page", "/console/customers/"),
        ("second page (cursor)", f"/console/customers/?after={cursor}"),
        ("being recovered", "/console/customers/?state=open"),
        ("recovered", "/console/customers/?state=recovered"),
        ("search: e-mail", f"/console/customers/?q={some.email}"),
        ("search: name prefix", "/console/customers/?q=Customer+1234"),
        ("search: your id (no match)", "/console/customers/?q=cus_nobody"),
        ("search: phone (no match)", "/console/customers/?q=%2B14155550123"),
        ("search: e-mail + recovered", f"/console/customers/?q={some.email}&state=recovered"),
        (f"customer page ({busy['n']} payments)", f"/console/customers/{busy['customer_id']}/"),
    ]
    return _rows(client, "customers", scenarios, repeat)


def bench_logs(organization, user, keys, *, repeat: int) -> list[tuple]:
    from tinko.console import selectors
    from tinko.models import ApiRequestLog
    from tinko.pagination import keyset_page

    client = _client(user)
    _first, cursor = keyset_page(selectors.api_request_logs(organization), size=selectors.API_LOG_PAGE_SIZE)
    logs = ApiRequestLog.objects.filter(organization=organization)
    middle = logs.order_by("pk")[logs.count() // 2]
    keyed = logs.exclude(idempotency_key="").order_by("pk")[logs.exclude(idempotency_key="").count() // 3]
    scenarios = [
        ("first page", "/console/developers/logs/"),
        ("second page (cursor)", f"/console/developers/logs/?after={cursor}"),
        ("status = 5xx (0.2 %)", "/console/developers/logs/?status=5xx"),
        ("status = 4xx", "/console/developers/logs/?status=4xx"),
        ("method = GET", "/console/developers/logs/?method=GET"),
        ("a secondary key (10 %)", f"/console/developers/logs/?key={keys[1].pk}"),
        ("5xx + GET + secondary key", f"/console/developers/logs/?status=5xx&method=GET&key={keys[2].pk}"),
        ("search: request id", f"/console/developers/logs/?q={middle.request_id}"),
        ("search: Idempotency-Key", f"/console/developers/logs/?q={keyed.idempotency_key}"),
        ("search: path prefix", "/console/developers/logs/?q=%2Fapi%2Fv1%2Fpayments%2F"),
        ("search: no match", "/console/developers/logs/?q=no-such-request"),
        ("one request's page", f"/console/developers/logs/{middle.pk}/"),
    ]
    return _rows(client, "logs", scenarios, repeat)


def bench_logging_overhead(*, rounds: int, seconds: float, concurrency: int) -> list[tuple]:
    from tests.bench import common, ingestion

    from tinko.models import ApiRequestLog

    merchant = common.merchant()
    logged_before = ApiRequestLog.objects.filter(organization=merchant.organization).count()
    servers = {}
    try:
        for label, enabled in (("logging on", "true"), ("logging off", "false")):
            os.environ["TINKO_API_LOG_ENABLED"] = enabled
            servers[label] = ingestion.Server(workers=2, threads=4)
        os.environ.pop("TINKO_API_LOG_ENABLED")
        for label, server in servers.items():  # warm-up: imports, pools, the classifier's rule cache
            ingestion.run_phase(server, name=label, path=ingestion.SINGLE, api_key=merchant.api_key,
                                concurrency=concurrency, duration=2, prefix=f"warm-{label.replace(' ', '-')}")
        common.analyze_data()
        phases: dict[str, list] = {label: [] for label in servers}
        for r in range(rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for label in order:
                phase = ingestion.run_phase(servers[label], name=label, path=ingestion.SINGLE,
                                            api_key=merchant.api_key, concurrency=concurrency, duration=seconds,
                                            prefix=f"{r}-{label.replace(' ', '-')}-{uuid.uuid4().hex[:6]}")
                phases[label].append(phase)
                print(f"    {label:12} round {r + 1}: {phase.rate:7.1f} req/s  p50 {phase.percentile(0.5):6.1f} ms  "
                      f"p99 {phase.percentile(0.99):6.1f} ms  errors {phase.errors}", flush=True)
                for sample in phase.error_samples[:3]:
                    print(f"      error: {sample}")
    finally:
        for server in servers.values():
            server.stop()
    rate = {label: sum(p.ok for p in runs) / sum(p.elapsed for p in runs) for label, runs in phases.items()}
    if not all(rate.values()):
        raise SystemExit("no request succeeded in a phase: see the errors above")
    pairs = [off.rate / on.rate - 1 for on, off in zip(phases["logging on"], phases["logging off"])]
    overhead = (rate["logging off"] / rate["logging on"] - 1) * 100
    # CPU time of the gunicorn workers per request: far steadier than throughput on a shared machine
    # (it leaves out PostgreSQL's share of the INSERT, which the in-process timing below includes).
    cpu_ms = {label: sum(sum(p.worker_cpu) for p in runs) * 1000 / sum(p.ok for p in runs)
              for label, runs in phases.items()}
    cpu_overhead = (cpu_ms["logging on"] / cpu_ms["logging off"] - 1) * 100
    logged = ApiRequestLog.objects.filter(organization=merchant.organization).count() - logged_before
    ok_on = sum(p.ok + p.errors for p in phases["logging on"])
    return [
        ("ingestion: API log cost, throughput", overhead, 5.0, "%",
         f"{rate['logging on']:.0f} req/s logged vs {rate['logging off']:.0f} unlogged; per round pair "
         f"{', '.join(f'{p * 100:+.1f}' for p in pairs)} %; median pair {statistics.median(pairs) * 100:+.1f} %; "
         f"{logged:,} rows logged for {ok_on:,} requests to the logging server (+ its warm-up)"),
        ("ingestion: API log cost, worker CPU/request", cpu_overhead, 5.0, "%",
         f"{cpu_ms['logging on']:.2f} ms CPU per request logged vs {cpu_ms['logging off']:.2f} ms unlogged"),
    ]


def bench_logging_in_process(*, blocks: int, per_block: int) -> list[tuple]:
    """The same ingestion request in this process, logging switched on and off between blocks of requests
    (the order flipping every block): the median server time of each, database round trips included."""
    from django.conf import settings
    from django.test import Client

    from tests.bench import common

    merchant = common.merchant()
    client = Client(HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    headers = {"Authorization": f"Bearer {merchant.api_key}"}
    rng = random.Random("in-process")
    times: dict[bool, list[float]] = {True: [], False: []}
    n = 0
    try:
        for b in range(blocks + 1):
            for enabled in ((True, False) if b % 2 == 0 else (False, True)):
                settings.TINKO_API_LOG_ENABLED = enabled
                for _ in range(per_block):
                    n += 1
                    body = json.dumps(common.failure_report(f"inproc-{uuid.uuid4().hex[:8]}-{n}", rng))
                    started = time.perf_counter()
                    response = client.post("/api/v1/events/payment_failed", body, content_type="application/json",
                                           headers=headers)
                    took = (time.perf_counter() - started) * 1000
                    assert response.status_code == 201, response.content[:300]
                    if b:  # block 0 warms up
                        times[enabled].append(took)
    finally:
        settings.TINKO_API_LOG_ENABLED = True
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return [("ingestion: API log cost, in-process median", (on / off - 1) * 100, 5.0, "%",
             f"median {on:.2f} ms logged vs {off:.2f} ms unlogged over {len(times[True]):,} requests each, "
             f"{blocks} alternating blocks")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments of the measured organization")
    parser.add_argument("--customers", type=int, default=300_000, help="customers of the measured organization")
    parser.add_argument("--logs", type=int, default=1_000_000, help="logged API requests of the measured organization")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page scenario (median reported)")
    parser.add_argument("--ingest-rounds", type=int, default=6, help="rounds of the logging-overhead benchmark")
    parser.add_argument("--ingest-seconds", type=float, default=8.0, help="seconds per phase of each round")
    parser.add_argument("--only", choices=["pages", "ingestion"], help="run one part only")
    parser.add_argument("--reuse", action="store_true", help="keep the data of a previous run with the same sizes")
    args = parser.parse_args(argv)
    _configure()

    from recovery.models import Customer, Payment
    from tinko import services
    from tinko.models import ApiKey, ApiRequestLog, Membership, Organization, User

    user = User.objects.filter(email="bench-console@tinko.test").first() or User.objects.create_user(
        email="bench-console@tinko.test", password=None)
    org = Organization.objects.filter(slug="bench-console").first() or services.create_organization(
        name="Bench console", owner=user, slug="bench-console", timezone="UTC", default_currency="USD")
    other = Organization.objects.filter(slug="bench-console-other").first() or services.create_organization(
        name="Other tenant", owner=user, slug="bench-console-other", timezone="UTC", default_currency="USD")
    keys = list(ApiKey.objects.filter(organization=org).order_by("pk"))
    for name in ["Production checkout", "Billing worker", "Support scripts"][len(keys):]:
        keys.append(services.create_api_key(organization=org, name=name, created_by=user)[0])
    other_keys = list(ApiKey.objects.filter(organization=other)) or [
        services.create_api_key(organization=other, name="Other", created_by=user)[0]]

    rows: list[tuple] = []
    if args.only != "ingestion":
        loaded = (Payment.objects.filter(organization=org).count() == args.payments
                  and Customer.objects.filter(organization=org).count() == args.customers
                  and ApiRequestLog.objects.filter(organization=org).count() >= args.logs)
        if not (args.reuse and loaded):
            reset()
            started = time.perf_counter()
            load_customers_and_payments(other, payments=50_000, customers=15_000, seed="other")
            load_customers_and_payments(org, payments=args.payments, customers=args.customers, seed="bench")
            load_logs(other, other_keys * 3, count=100_000, seed="other")
            load_logs(org, keys, count=args.logs, seed="bench")
            print(f"loaded {args.payments:,} payments, {args.customers:,} customers and {args.logs:,} logged requests "
                  f"(+ the other tenant's) with COPY in {time.perf_counter() - started:.1f} s", flush=True)
        # The console shows the user's first organization: make it the measured one.
        Membership.objects.filter(user=user, organization=other).delete()
        rows += bench_customers(org, user, repeat=args.repeat)
        rows += bench_logs(org, user, keys, repeat=args.repeat)
    if args.only != "pages":
        print("logging overhead on single-event ingestion (two gunicorns, alternating):", flush=True)
        rows += bench_logging_overhead(rounds=args.ingest_rounds, seconds=args.ingest_seconds, concurrency=8)
        print("the same in-process, logging switched between blocks:", flush=True)
        rows += bench_logging_in_process(blocks=20, per_block=25)

    from tests.bench.pages import print_summary

    return 1 if print_summary(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
