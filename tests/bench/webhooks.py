"""Benchmark: Stripe webhook acknowledgement under gunicorn on PostgreSQL.

    .venv/bin/python -m tests.bench.webhooks                 # 60 s per endpoint at 100 requests/s
    .venv/bin/python -m tests.bench.webhooks --duration 20   # shorter, for a quick look

Same environment as ``make bench`` (tests/bench/README.md): its own database
(name must contain "bench"), Redis DBs 6/7. One gunicorn (repo config, 2 workers
× 4 threads) serves both endpoints:

- ``/bench/stripe-verify/<account>/``: the bare endpoint, which only finds the
  account and verifies the ``Stripe-Signature``;
- ``/webhooks/stripe/<account>/``: the real inbox (store raw request, verify,
  claim the event id, ingest the failure, classify, plan, answer).

An open-loop generator sends a unique, signed ``payment_intent.payment_failed``
event every 10 ms (100 requests/s) for ``--duration`` seconds to each, on 32
keep-alive connections; latency counts from each request's scheduled time, so
a slow server cannot hide behind a slower send rate. Target: p99 ≤ 50 ms, zero
errors, on the real inbox; the ratio to the bare endpoint is reported.
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
    latencies, errors, samples = [], [], []
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
                latencies.append(done - scheduled)
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
    ordered = sorted(latencies)

    def pct(p):
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

    return {"sent": len(bodies), "rate": len(bodies) / elapsed, "errors": len(errors), "error_samples": errors[:5],
            "p50": pct(0.50), "p99": pct(0.99), "max": ordered[-1] * 1000 if ordered else 0.0}


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    args = parser.parse_args(argv)
    common.configure()
    common.reset_data()
    from payments import accounts
    from payments.models import ProviderAccount, WebhookMessage
    from tests.payments.psp import load

    ProviderAccount.objects.filter(organization__slug="bench").delete()
    merchant = common.merchant()
    account = accounts.connect_account(
        organization=merchant.organization, provider="stripe", name=f"Bench {uuid.uuid4().hex[:6]}",
        secrets={"secret_key": "sk_test_bench000000000000", "webhook_secret": SECRET},
    )
    template = load("stripe", "payment_intent.payment_failed")
    server = Server(workers=args.web_workers, threads=args.web_threads)
    load_before = _loadavg()
    try:
        # Warm-up: every worker imports and connects before the clock starts.
        run(server, account.webhook_path, template, rate=50, duration=2)
        bare = run(server, f"/bench/stripe-verify/{account.public_id}/", template, rate=args.rate, duration=args.duration)
        inbox = run(server, account.webhook_path, template, rate=args.rate, duration=args.duration)
    finally:
        server.stop()
    processed = WebhookMessage.objects.filter(account=account, status="processed").count()
    for name, r in (("bare (verify only)", bare), ("webhook inbox", inbox)):
        print(f"{name:20} sent {r['sent']} at {r['rate']:.1f}/s  errors {r['errors']} {r['error_samples']}  "
              f"p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms")
    print(f"inbox/bare: p50 ×{inbox['p50'] / bare['p50']:.2f}, p99 ×{inbox['p99'] / bare['p99']:.2f}; "
          f"messages processed: {processed}")
    # Other work on the machine moves both endpoints; the ratio moves much less.
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {_loadavg()}; {os.cpu_count()} CPUs")
    passed = inbox["p99"] <= 50 and inbox["errors"] == 0
    print("PASS" if passed else "FAIL", "(target: p99 ≤ 50 ms at 100 requests/s, zero errors)")
    common.reset_data()
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
