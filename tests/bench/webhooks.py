"""Benchmark: Stripe webhooks under gunicorn and rundramatiq on PostgreSQL and Redis.

    .venv/bin/python -m tests.bench.webhooks                  # 30 s per phase
    .venv/bin/python -m tests.bench.webhooks --duration 10    # shorter, for a quick look

Same environment as ``make bench`` (tests/bench/README.md): its own database
(name must contain "bench"), Redis DBs 6/7. One gunicorn (repo config, 2 workers
× 4 threads) serves both endpoints, and one ``rundramatiq`` (2 processes × 4
threads) processes the inbox:

- ``/bench/stripe-verify/<account>/``: the bare endpoint, which only finds the
  account and verifies the ``Stripe-Signature``;
- ``/webhooks/stripe/<account>/``: the real inbox (verify, store durably, 200;
  the worker then ingests the failure, classifies and plans).

An open-loop generator sends unique, signed ``payment_intent.payment_failed``
events (5,000 customers) on 32 keep-alive connections; latency counts from each
request's scheduled time, so a slow server cannot hide behind a slower send rate.

1. **Acknowledgement at 100/s**: the bare endpoint, then the inbox, ``--duration``
   seconds each. Target: inbox p99 ≤ 3 × the bare endpoint's p99, zero errors.
2. **Processing lag at 100/s** (same phase): from each message's arrival to its
   outcome recorded by the worker. Target: p99 ≤ 2 s, every message processed.
3. **Sustained 400/s** for ``--sustain`` seconds: p50/p99 per 5-second window.
   Target: zero errors, at least 98 % of the rate achieved, and the second
   half's p99 at most 1.5 × the first half's + 10 ms (latency does not grow).
   The backlog left to the worker and the time it takes to drain are printed.
4. **Cost per webhook**: CPU of the gunicorn workers (acknowledgement) and of
   the Dramatiq processes (processing) during phases 1–2, per webhook; and,
   in-process over ``--cost-events`` events, CPU ms and SQL statements of the
   request and of the processing step separately.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import queue
import threading
import time
import uuid

from tests.bench import common
from tests.bench.ingestion import Server

SECRET = "whsec_bench_0123456789abcdef"
WINDOW = 5.0


def _event(template: dict, n: int) -> dict:
    event = copy.deepcopy(template)
    tag = uuid.uuid4().hex[:14]
    intent = event["data"]["object"]
    event["id"] = f"evt_bench{tag}"
    event["created"] = int(time.time())
    intent["id"] = f"pi_bench{tag}"
    intent["created"] = event["created"]
    intent["latest_charge"] = intent["last_payment_error"]["charge"] = f"ch_bench{tag}"
    intent["customer"] = f"cus_bench{n % 5000}"
    intent["last_payment_error"]["payment_method"]["billing_details"]["email"] = f"c{n % 5000}@example.com"
    return event


def run(server: Server, path: str, template: dict, *, rate: float, duration: float, connections: int = 32) -> dict:
    from tests.payments.psp import stripe_signature

    jobs: queue.Queue = queue.Queue()
    samples, errors = [], []  # samples: (seconds after start it was scheduled, latency)
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while True:
            job = jobs.get()
            if job is None:
                return
            scheduled, body = job
            headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, SECRET),
                       "X-Forwarded-Proto": "https", "Host": "127.0.0.1"}
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
                status = response.status
            except OSError as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                ok, status = False, type(exc).__name__
            done = time.perf_counter()
            with lock:
                samples.append((scheduled - start, done - scheduled))
                if not ok:
                    errors.append(status)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    bodies = [json.dumps(_event(template, n)).encode() for n in range(int(rate * duration))]
    start = time.perf_counter()
    for n, body in enumerate(bodies):
        scheduled = start + n / rate
        pause = scheduled - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        jobs.put((scheduled, body))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    result = {"sent": len(bodies), "rate": len(bodies) / elapsed, "elapsed": elapsed, "errors": len(errors),
              "error_samples": errors[:5],
              **_percentiles([latency for _, latency in samples])}
    windows = []
    for w in range(int(duration // WINDOW)):
        inside = [lat for at, lat in samples if w * WINDOW <= at < (w + 1) * WINDOW]
        windows.append({"from": w * WINDOW, **_percentiles(inside)})
    half = duration / 2
    result["windows"] = windows
    result["first_half"] = _percentiles([lat for at, lat in samples if at < half])
    result["second_half"] = _percentiles([lat for at, lat in samples if at >= half])
    return result


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def pct(p):
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

    return {"p50": pct(0.50), "p99": pct(0.99), "max": ordered[-1] * 1000 if ordered else 0.0, "n": len(ordered)}


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _heartbeats() -> int:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return client.zcard(f"{os.environ['DRAMATIQ_NAMESPACE']}:__heartbeats__")


def _cpu(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += common.cpu_seconds(pid)
        except OSError:
            pass
    return total


def _postgres_pids() -> list[int]:
    """PostgreSQL's backends connected to this database (gunicorn's and the worker's connections), not this one."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]


def _lag(account, since) -> dict:
    """Arrival → outcome of the account's messages received since ``since`` (waits up to 120 s for the worker)."""
    from payments.models import WebhookMessage, WebhookStatus

    messages = WebhookMessage.objects.filter(account=account, received_at__gte=since)
    deadline = time.monotonic() + 120
    # Messages waiting for a retry are not waited for: they show in the statuses and fail the check.
    while messages.filter(status__in=[WebhookStatus.RECEIVED, WebhookStatus.PROCESSING]).exists() \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    rows = list(messages.values_list("status", "received_at", "processed_at"))
    lags = [(done - received).total_seconds() for status, received, done in rows if done is not None]
    statuses: dict[str, int] = {}
    for status, _, _ in rows:
        statuses[status] = statuses.get(status, 0) + 1
    result = _percentiles(lags)
    return {**{k: v / 1000 for k, v in result.items() if k != "n"}, "n": result["n"], "statuses": statuses}


def _drain(account) -> float:
    from payments.models import WebhookMessage, WebhookStatus

    started = time.monotonic()
    pending = WebhookMessage.objects.filter(account=account,
                                            status__in=[WebhookStatus.RECEIVED, WebhookStatus.PROCESSING])
    while pending.exists() and time.monotonic() - started < 300:
        time.sleep(0.5)
    return time.monotonic() - started


def cost(account, template: dict, *, events: int) -> dict:
    """In-process, through the whole Django stack: CPU ms and SQL statements of the request and of the processing."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from payments import inbox
    from tests.payments.psp import stripe_signature

    import logging

    # The access log's line per request would flood the output (gunicorn's go to var/bench/).
    logging.getLogger("tinko.access").setLevel(logging.WARNING)
    client = Client(HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="127.0.0.1")
    bodies = [json.dumps(_event(template, n)).encode() for n in range(events + 20)]

    def post(body):
        response = client.post(account.webhook_path, data=body, content_type="application/json",
                               HTTP_STRIPE_SIGNATURE=stripe_signature(body, SECRET))
        assert response.status_code == 200, response.content

    for body in bodies[:20]:  # warm-up: caches, classifier rules, connections
        post(body)
    inbox.process_due()
    request_cpu = processing_cpu = 0.0
    request_sql = processing_sql = 0
    for start in range(20, len(bodies), 50):
        chunk = bodies[start:start + 50]
        with CaptureQueriesContext(connection) as ctx:
            t = time.process_time()
            for body in chunk:
                post(body)
            request_cpu += time.process_time() - t
        request_sql += len(ctx.captured_queries)
        with CaptureQueriesContext(connection) as ctx:
            t = time.process_time()
            inbox.process_due()
            processing_cpu += time.process_time() - t
        processing_sql += len(ctx.captured_queries)
    return {"request_cpu_ms": request_cpu * 1000 / events, "request_sql": request_sql / events,
            "processing_cpu_ms": processing_cpu * 1000 / events, "processing_sql": processing_sql / events}


def _print_run(name: str, r: dict) -> None:
    print(f"{name:22} sent {r['sent']} at {r['rate']:.1f}/s  errors {r['errors']} {r['error_samples']}  "
          f"p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30, help="seconds of each 100/s phase")
    parser.add_argument("--sustain", type=float, default=30, help="seconds of the 400/s phase")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--sustain-rate", type=float, default=400)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--cost-events", type=int, default=500)
    args = parser.parse_args(argv)
    common.configure()
    common.reset_data()
    common.reset_broker()
    from django.utils import timezone

    from payments import accounts
    from payments.models import ProviderAccount, WebhookMessage
    from tests.payments.psp import load

    WebhookMessage.objects.filter(organization__slug="bench").delete()
    ProviderAccount.objects.filter(organization__slug="bench").delete()
    merchant = common.merchant()
    account = accounts.connect_account(
        organization=merchant.organization, provider="stripe", name=f"Bench {uuid.uuid4().hex[:6]}",
        secrets={"secret_key": "sk_test_bench000000000000", "webhook_secret": SECRET},
    )
    template = load("stripe", "payment_intent.payment_failed")
    print(f"load average (1, 5, 15 min) at start: {_loadavg()}; {os.cpu_count()} CPUs", flush=True)
    costs = cost(account, template, events=args.cost_events)
    print(f"in-process cost per webhook over {args.cost_events}: request {costs['request_cpu_ms']:.2f} ms CPU, "
          f"{costs['request_sql']:.2f} statements; processing {costs['processing_cpu_ms']:.2f} ms CPU, "
          f"{costs['processing_sql']:.2f} statements", flush=True)
    common.reset_data()
    server = Server(workers=args.web_workers, threads=args.web_threads)
    worker = common.start_process(
        [str(common.REPO / ".venv" / "bin" / "python"), "manage.py", "rundramatiq", "--processes",
         str(args.worker_processes), "--threads", str(args.worker_threads)],
        log_name="rundramatiq-webhooks.log",
    )
    try:
        common.wait_until(lambda: _heartbeats() >= args.worker_processes, timeout=60, interval=0.2,
                          what="the Dramatiq worker processes")
        # Warm-up: every web worker and worker thread imports and connects before the clock starts.
        run(server, account.webhook_path, template, rate=50, duration=4)
        _drain(account)
        web_pids, worker_pids = server.worker_pids(), common.descendants(worker.pid)
        load_before = _loadavg()
        bare = run(server, f"/bench/stripe-verify/{account.public_id}/", template, rate=args.rate, duration=args.duration)
        since = timezone.now()
        web_cpu, worker_cpu = _cpu(web_pids), _cpu(worker_pids)
        inbox = run(server, account.webhook_path, template, rate=args.rate, duration=args.duration)
        lag = _lag(account, since)
        web_cpu, worker_cpu = _cpu(web_pids) - web_cpu, _cpu(worker_pids) - worker_cpu
        load_mid = _loadavg()
        # Where the CPU goes at the sustained rate: gunicorn, the worker, PostgreSQL's backends of this database,
        # and the load generator itself (this process: it must not be what limits the rate).
        pg_pids = _postgres_pids()
        split = (_cpu(web_pids), _cpu(worker_pids), _cpu(pg_pids), time.process_time())
        sustained = run(server, account.webhook_path, template, rate=args.sustain_rate, duration=args.sustain)
        split = [after - before for after, before in
                 zip((_cpu(web_pids), _cpu(worker_pids), _cpu(pg_pids), time.process_time()), split)]
        backlog = WebhookMessage.objects.filter(account=account, status__in=WebhookMessage.PENDING).count()
        drain_seconds = _drain(account)
        load_after = _loadavg()
    finally:
        common.stop_process(worker, timeout=60)
        server.stop()
    _print_run("bare (verify only)", bare)
    _print_run("webhook inbox", inbox)
    ratio = inbox["p99"] / bare["p99"] if bare["p99"] else float("inf")
    print(f"inbox/bare: p50 ×{inbox['p50'] / bare['p50']:.2f}, p99 ×{ratio:.2f} (target p99 ≤ ×3)")
    print(f"processing lag at {args.rate:.0f}/s: p50 {lag['p50']:.2f} s, p99 {lag['p99']:.2f} s, max {lag['max']:.2f} s "
          f"over {lag['n']} messages; statuses {lag['statuses']} (target p99 ≤ 2 s)")
    processed = inbox["sent"]
    print(f"CPU per webhook under gunicorn/rundramatiq at {args.rate:.0f}/s: acknowledgement "
          f"{web_cpu * 1000 / processed:.2f} ms (web workers), processing {worker_cpu * 1000 / processed:.2f} ms "
          f"(worker processes; PostgreSQL's share not included)")
    _print_run(f"sustained {args.sustain_rate:.0f}/s", sustained)
    for w in sustained["windows"]:
        print(f"    {w['from']:5.0f}–{w['from'] + WINDOW:.0f} s: p50 {w['p50']:.1f} ms  p99 {w['p99']:.1f} ms  "
              f"max {w['max']:.1f} ms  ({w['n']} requests)")
    first, second = sustained["first_half"], sustained["second_half"]
    print(f"    first half p99 {first['p99']:.1f} ms, second half p99 {second['p99']:.1f} ms; backlog left to the "
          f"worker {backlog}, drained in {drain_seconds:.1f} s")
    per = 1000 / max(1, sustained["sent"])
    print(f"    CPU per webhook while sustained: web workers {split[0] * per:.2f} ms, worker processes "
          f"{split[1] * per:.2f} ms, PostgreSQL backends {split[2] * per:.2f} ms, load generator {split[3] * per:.2f} ms "
          f"({split[3] / sustained['elapsed']:.2f} of a core); all four together {sum(split) / sustained['elapsed']:.2f} "
          f"of the {os.cpu_count()} cores over the {sustained['elapsed']:.0f} s the phase took (the rest: other work)")
    print(f"load average (1, 5, 15 min) before: {load_before}, between: {load_mid}, after: {load_after}; "
          f"{os.cpu_count()} CPUs")
    checks = {
        "ack p99 ≤ 3 × bare": ratio <= 3 and inbox["errors"] == 0,
        "lag p99 ≤ 2 s, all processed": lag["p99"] <= 2 and lag["statuses"].get("processed", 0) == inbox["sent"],
        f"{args.sustain_rate:.0f}/s sustained": (sustained["errors"] == 0
                                                  and sustained["rate"] >= 0.98 * args.sustain_rate
                                                  and second["p99"] <= 1.5 * first["p99"] + 10),
    }
    for name, ok in checks.items():
        print(("PASS " if ok else "FAIL ") + name)
    WebhookMessage.objects.filter(account=account).delete()
    common.reset_data()
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
