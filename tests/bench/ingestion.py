"""Benchmarks 1 and 2: ingestion through gunicorn on PostgreSQL.

One gunicorn (the repo's gunicorn.conf.py, ``tests.bench.settings``: DEBUG off,
Redis cache and broker, a throttle rate so high that it counts every request
but refuses none) serves both endpoints, so they share every server setting.

1. Single events: a closed-loop load generator (threads, one keep-alive
   connection each) posts to the bare baseline endpoint and to
   ``POST /api/v1/events/payment_failed`` (without and with an
   ``Idempotency-Key``), alternating for the same time each, in rounds.
   Reported: requests/s of each, and ingestion's throughput as a share of the baseline's.
2. Batches: ``POST /api/v1/events/payment_failed/batch`` with 1,000 events per
   request, each on a new connection; events/s with one client, and with several
   clients at once (two per gunicorn worker by default), with the CPU each
   gunicorn worker, PostgreSQL and the load generator spent per event.

Peak RSS (VmHWM) of every gunicorn worker is read after each benchmark.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field

from tests.bench import common

BASELINE = "/bench/baseline"
SINGLE = "/api/v1/events/payment_failed"
BATCH = "/api/v1/events/payment_failed/batch"


@dataclass
class Phase:
    name: str
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list = field(default_factory=list)
    error_samples: list = field(default_factory=list)
    worker_cpu: list = field(default_factory=list)  # CPU seconds per gunicorn worker during the phase

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


class Server:
    """gunicorn with the repo's config; WEB_CONCURRENCY workers × GUNICORN_THREADS threads."""

    def __init__(self, *, workers: int, threads: int):
        self.port = common.free_port()
        self.workers = workers
        self.threads = threads
        self.process = common.start_process(
            [str(common.REPO / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "tinko.wsgi"],
            log_name="gunicorn.log",
            env={
                "PORT": str(self.port),
                "WEB_CONCURRENCY": str(workers),
                "GUNICORN_THREADS": str(threads),
                # No recycling mid-benchmark: a fresh worker would hide the peak memory of the old one.
                "GUNICORN_MAX_REQUESTS": "0",
            },
        )
        common.wait_until(self._ready, timeout=60, interval=0.25, what="gunicorn to answer /healthz")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {common.LOG_DIR / 'gunicorn.log'}")
        if len(self.worker_pids()) < self.workers:
            return False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        return common.children(self.process.pid)

    def peak_rss_mb(self) -> dict[int, float]:
        return {pid: common.mb(common.status_field(pid, "VmHWM")) for pid in self.worker_pids()}

    def cpu(self) -> dict[int, float]:
        return {pid: common.cpu_seconds(pid) for pid in self.worker_pids()}

    def stop(self) -> None:
        common.stop_process(self.process)


def _headers(api_key: str, *, idempotent: bool) -> dict:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        # What the TLS-terminating proxy in front of gunicorn sets (production redirects plain HTTP).
        "X-Forwarded-Proto": "https",
        "Host": "127.0.0.1",
    }
    if idempotent:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers


def run_phase(server: Server, *, name: str, path: str, api_key: str, concurrency: int, duration: float,
              prefix: str, idempotent: bool = False) -> Phase:
    """Closed loop: ``concurrency`` threads post unique reports to ``path`` for ``duration`` seconds."""
    phase = Phase(name)
    lock = threading.Lock()
    cpu_before = server.cpu()
    start = time.perf_counter()
    deadline = start + duration

    def client(index: int) -> None:
        rng = random.Random(f"{prefix}-{index}")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        ok = errors = 0
        latencies, samples = [], []
        n = 0
        while time.perf_counter() < deadline:
            body = json.dumps(common.failure_report(f"{prefix}-{index}-{n}", rng)).encode()
            n += 1
            sent = time.perf_counter()
            try:
                conn.request("POST", path, body, _headers(api_key, idempotent=idempotent))
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors += 1
                samples.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                continue
            latencies.append(time.perf_counter() - sent)
            if response.status == 201:
                ok += 1
            else:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{response.status} {data[:300]!r}")
        conn.close()
        with lock:
            phase.ok += ok
            phase.errors += errors
            phase.latencies.extend(latencies)
            phase.error_samples.extend(samples[:3])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.elapsed = time.perf_counter() - start
    cpu_after = server.cpu()
    phase.worker_cpu = [round(cpu_after[pid] - cpu_before.get(pid, 0.0), 1) for pid in sorted(cpu_after)]
    return phase


def single_event(server: Server, *, api_key: str, concurrency: int, duration: float, rounds: int, tag: str) -> dict:
    """Benchmark 1. Endpoints alternate within each round (and the order rotates) so drift hits all alike."""
    variants = [
        ("baseline", BASELINE, False),
        ("ingest", SINGLE, False),
        ("ingest+idempotency-key", SINGLE, True),
    ]
    # Warm-up: imports, connection pools, the classifier's rule cache.
    for name, path, idem in variants:
        run_phase(server, name=name, path=path, api_key=api_key, concurrency=concurrency, duration=2,
                  prefix=f"{tag}-warm-{name}", idempotent=idem)
    phases: dict[str, list[Phase]] = {name: [] for name, _, _ in variants}
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for name, path, idem in order:
            phase = run_phase(server, name=name, path=path, api_key=api_key, concurrency=concurrency,
                              duration=duration, prefix=f"{tag}-{r}-{name}", idempotent=idem)
            phases[name].append(phase)
            print(f"    {name:24} round {r + 1}: {phase.rate:7.1f} req/s  p50 {phase.percentile(0.5):6.1f} ms  "
                  f"p99 {phase.percentile(0.99):6.1f} ms  errors {phase.errors}  worker CPU s {phase.worker_cpu}",
                  flush=True)
            for sample in phase.error_samples[:3]:
                print(f"      error: {sample}")
    summary = {}
    for name, runs in phases.items():
        ok = sum(p.ok for p in runs)
        elapsed = sum(p.elapsed for p in runs)
        summary[name] = {
            "rate": ok / elapsed,
            "per_round": [round(p.rate, 1) for p in runs],
            "p50_ms": statistics.median(p.percentile(0.5) for p in runs),
            "p99_ms": max(p.percentile(0.99) for p in runs),
            "errors": sum(p.errors for p in runs),
        }
    return summary


def batch_bodies(count: int, *, tag: str, size: int = 1000) -> list[bytes]:
    rng = random.Random(tag)
    return [
        json.dumps({"events": [common.failure_report(f"{tag}-b{b}-{i}", rng) for i in range(size)]}).encode()
        for b in range(count)
    ]


def _post_batches(server: Server, api_key: str, bodies: list[bytes], results: list) -> None:
    """Post each batch on a connection of its own, as a proxy without upstream keep-alive does.

    gunicorn's workers take turns accepting on the shared socket and a worker serves a
    keep-alive connection for as long as it lasts: two keep-alive clients that connect at
    the same moment can both end up on one worker for the whole run, which then measures
    one core (worker CPU seconds [0.0, 2.7]). A connection per 1,000-event request costs
    well under a millisecond next to the request itself, and lets a free worker take the next.
    """
    for body in bodies:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        sent = time.perf_counter()
        conn.request("POST", BATCH, body, _headers(api_key, idempotent=False))
        response = conn.getresponse()
        data = response.read()
        took = time.perf_counter() - sent
        conn.close()
        recorded = 0
        if response.status == 200:
            recorded = sum(1 for item in json.loads(data)["results"] if item["status"] == 201)
        else:
            print(f"      batch error: {response.status} {data[:300]!r}")
        results.append((recorded, took))


def _cpu_per_event(seconds: float | None, events: int) -> float | None:
    return None if seconds is None or not events else seconds / events * 1000


def batches(server: Server, *, api_key: str, tag: str, sequential: int, clients: int, per_client: int) -> dict:
    """Benchmark 2: sequential batches from one client, then ``clients`` clients at once.

    Reported with the CPU it took: each gunicorn worker's (to see the load spread over
    both), PostgreSQL's for the bench database (when it runs here), and this process's
    (the load generator shares the cores): per event, steadier than events/s on a
    machine shared with other work.
    """
    _post_batches(server, api_key, batch_bodies(2, tag=f"{tag}-warm"), [])
    out = {}
    bodies = batch_bodies(sequential, tag=f"{tag}-seq")
    results: list = []
    cpu_before = server.cpu()
    start = time.perf_counter()
    _post_batches(server, api_key, bodies, results)
    elapsed = time.perf_counter() - start
    cpu_after = server.cpu()
    events = sum(r for r, _ in results)
    out["sequential"] = {
        "events": events, "elapsed": elapsed,
        "rate": events / elapsed, "batch_ms": [round(t * 1000) for _, t in results],
        "worker_cpu": [round(cpu_after[p] - cpu_before.get(p, 0.0), 1) for p in sorted(cpu_after)],
    }
    per_client_bodies = [batch_bodies(per_client, tag=f"{tag}-par{c}") for c in range(clients)]
    results = []
    database = common.DatabaseCpu().start()
    cpu_before = server.cpu()
    own_before = time.process_time()
    start = time.perf_counter()
    threads = [threading.Thread(target=_post_batches, args=(server, api_key, b, results)) for b in per_client_bodies]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # clients do not connect in the same instant
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    own = time.process_time() - own_before
    cpu_after = server.cpu()
    database_seconds = database.stop()
    events = sum(r for r, _ in results)
    worker_cpu = [round(cpu_after[p] - cpu_before.get(p, 0.0), 1) for p in sorted(cpu_after)]
    out["concurrent"] = {
        "clients": clients, "events": events, "elapsed": elapsed,
        "rate": events / elapsed,
        "batch_ms_median": round(statistics.median(t for _, t in results) * 1000),
        "worker_cpu": worker_cpu,
        "worker_ms_per_event": _cpu_per_event(sum(worker_cpu), events),
        "database_ms_per_event": _cpu_per_event(database_seconds, events),
        "client_ms_per_event": _cpu_per_event(own, events),
    }
    out["expected_events"] = sequential * 1000 + clients * per_client * 1000
    return out
