"""Benchmark: 10,000 recovery e-mails rendered and delivered through the worker to a local SMTP server.

    .venv/bin/python -m tests.bench.notifications      # or: make bench-notifications

Setup (not timed): 10,000 failures ingested in-process (expired cards: each
payment gets one planned e-mail with a pay link, each to its own customer),
the org's quiet hours switched off (the run must not depend on the hour) and
the messages made due. A local SMTP server (aiosmtpd, in this process) counts
what arrives. One ``manage.py rundramatiq --processes 2 --threads N`` is
started with ``EMAIL_URL`` pointing at it.

Timed: ``claim_due_attempts()`` claims and enqueues the 10,000 attempts; the
worker runs each (respect checks, pay link, template choice, rendering with
CSS inlined, the Notification row) and then delivers each e-mail over SMTP;
the clock stops when the SMTP server has received all 10,000 and every
Notification is ``sent``. Target: ≤ 60 s.

Also reported: the time to render one message (context, template, HTML layout
and CSS inlining), measured in this process over 1,000 renders.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time

from tests.bench import common

MESSAGES = 10_000
TARGET_SECONDS = 60
NOTIFICATION_TABLES = ["notifications_notification", "notifications_suppression", "notifications_webhookdelivery",
                       "notifications_webhookmessage"]


class SmtpSink:
    """aiosmtpd on a free port, counting messages (and checking they carry a pay link)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.received = 0
        self.with_link = 0
        self.lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with outer.lock:
                    outer.received += 1
                    outer.with_link += b"/pay/" in envelope.content
                return "250 OK"

        self.port = common.free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        self.controller.stop()


def reset() -> None:
    from django.db import connection

    common.reset_data()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(NOTIFICATION_TABLES)} RESTART IDENTITY CASCADE")


def prepare(organization, count: int) -> int:
    from django.db import connection

    from recovery.ingestion import record_failures
    from recovery.models import RetryPolicy
    from recovery.reports import parse_report

    RetryPolicy.objects.filter(organization=organization).update(
        quiet_hours_start=None, quiet_hours_end=None, channels=["email"]
    )
    rng = random.Random("notifications")
    failure = {"code": "expired_card", "decline_code": "expired_card", "message": "Your card has expired."}
    for start in range(0, count, 1000):
        reports = [
            parse_report(common.failure_report(f"mail-{i}", rng, provider="sandbox", failure=failure))
            for i in range(start, min(start + 1000, count))
        ]
        record_failures(organization=organization, reports=reports)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE recovery_recoveryattempt SET scheduled_for = now() - interval '1 second' "
            "WHERE status = 'scheduled' AND kind = 'notification'"
        )
        due = cursor.rowcount
        for table in ("recovery_recoveryattempt", "payments_payment", "payments_customer"):
            cursor.execute(f"ANALYZE {table}")
    return due


def render_time(organization, *, renders: int = 1000) -> dict:
    """Milliseconds to render one recovery e-mail (context, copy, HTML layout, CSS inlined)."""
    from types import SimpleNamespace

    from django.utils import timezone

    from notifications import rendering
    from notifications.defaults import default_copy

    copy = default_copy(channel="email", kind="first_notice", locale="en")
    payment = SimpleNamespace(amount=4999, currency="USD", card_brand="visa", card_last4="4242", category="expired_card")
    customer = SimpleNamespace(name="Ada Lovelace", timezone="Asia/Kolkata", locale="en")
    samples = []
    for i in range(renders):
        started = time.perf_counter()
        context = rendering.build_context(organization=organization, customer=customer, payment=payment,
                                          pay_url=f"https://pay.example/pay/{i}/", expires_at=timezone.now(), locale="en")
        rendering.render_message(copy=copy, channel="email", context=context, unsubscribe_url="https://x/u/",
                                 open_pixel_url="https://x/o.gif")
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p95_ms": samples[int(len(samples) * 0.95)], "mean_ms": statistics.fmean(samples)}


def _sent() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM notifications_notification WHERE status = 'sent'")
        return cursor.fetchone()[0]


def _heartbeats() -> int:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return client.zcard(f"{os.environ['DRAMATIQ_NAMESPACE']}:__heartbeats__")


def run(organization, *, threads: int, count: int = MESSAGES, timeout: float = 900) -> dict:
    from recovery.dispatch import claim_due_attempts

    reset()
    common.reset_broker()
    sink = SmtpSink()
    # The worker inherits this: its e-mail goes to the sink.
    os.environ["EMAIL_URL"] = f"smtp://127.0.0.1:{sink.port}"
    try:
        t = time.perf_counter()
        due = prepare(organization, count)
        print(f"    prepared {due:,} due e-mail notifications in {time.perf_counter() - t:.1f} s", flush=True)
        worker = common.start_process(
            [str(common.REPO / ".venv" / "bin" / "python"), "manage.py", "rundramatiq", "--processes", "2",
             "--threads", str(threads)],
            log_name="rundramatiq-notifications.log",
        )
        try:
            common.wait_until(lambda: _heartbeats() >= 2, timeout=60, interval=0.2, what="2 Dramatiq worker processes")
            time.sleep(1)
            pids = [worker.pid, *common.descendants(worker.pid)]
            cpu_before = {pid: common.cpu_seconds(pid) for pid in pids}
            own_before = time.process_time()  # this process: the SMTP server's thread and the polling
            start = time.perf_counter()
            claim_due_attempts()
            rendered_at = None
            while True:
                if sink.received >= due and _sent() >= due:
                    break
                if rendered_at is None and _queued_or_sent() >= due:
                    rendered_at = time.perf_counter() - start
                if time.perf_counter() - start > timeout:
                    raise SystemExit(f"timed out: {sink.received} of {due} e-mails arrived")
                time.sleep(0.25)
            elapsed = time.perf_counter() - start
            own_cpu = time.process_time() - own_before
            worker_cpu = 0.0
            for pid in pids:
                try:
                    worker_cpu += common.cpu_seconds(pid) - cpu_before[pid]
                except OSError:
                    pass
            rss = {}
            for pid in [worker.pid, *common.descendants(worker.pid)]:
                try:
                    rss[pid] = common.mb(common.status_field(pid, "VmHWM"))
                except OSError:
                    pass
        finally:
            common.stop_process(worker, timeout=60)
    finally:
        sink.stop()
        os.environ.pop("EMAIL_URL", None)
    result = {"due": due, "elapsed": elapsed, "rendered_s": rendered_at, "received": sink.received,
              "with_link": sink.with_link, "rate": due / elapsed, "rss": rss, "worker_cpu": worker_cpu,
              "sink_cpu": own_cpu}
    reset()
    return result


def _queued_or_sent() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM notifications_notification")
        return cursor.fetchone()[0]


def main(argv=None) -> int:
    import logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker-threads", type=int, default=8, help="rundramatiq --threads (default 8)")
    parser.add_argument("--count", type=int, default=MESSAGES, help=f"messages (default {MESSAGES:,})")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the engine's 10,000-retry worker benchmark run first for comparison")
    args = parser.parse_args(argv)
    common.configure()
    # aiosmtpd logs every SMTP command at INFO: 60,000 JSON lines would compete with the worker for the CPU.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    merchant = common.merchant()
    render = render_time(merchant.organization)
    print(f"-- rendering one recovery e-mail: median {render['median_ms']:.2f} ms, p95 {render['p95_ms']:.2f} ms", flush=True)
    print(f"-- {args.count:,} e-mails through one rundramatiq --processes 2 --threads {args.worker_threads} to local SMTP",
          flush=True)
    baseline = None
    if not args.no_baseline:
        # The same machine, minutes apart: the engine's own worker benchmark (10,000 automatic
        # retries, same worker shape) tells how busy the machine is while this runs.
        from tests.bench import workers

        print("-- baseline: the engine's 10,000 automatic retries through the same worker", flush=True)
        common.reset_data()
        baseline = workers.run(merchant.organization, threads=args.worker_threads)["elapsed"]
        common.reset_data()
    result = run(merchant.organization, threads=args.worker_threads, count=args.count)
    passed = result["elapsed"] <= TARGET_SECONDS
    print(f"\n  {result['due']:,} e-mails rendered and delivered in {result['elapsed']:.1f} s "
          f"= {result['elapsed'] / TARGET_SECONDS:.0%} of the {TARGET_SECONDS} s target "
          f"({result['rate']:.0f} messages/s; all rendered and stored after {result['rendered_s'] or 0:.1f} s)  "
          f"{'PASS' if passed else 'FAIL'}")
    print(f"  SMTP server received {result['received']:,} ({result['with_link']:,} with a pay link); "
          f"render time per message: median {render['median_ms']:.2f} ms, mean {render['mean_ms']:.2f} ms")
    if baseline:
        print(f"  baseline (10,000 automatic retries, same worker, same run): {baseline:.1f} s; "
              f"e-mails took {result['elapsed'] / baseline:.2f}× the engine's retry time")
    print(f"  CPU while timed: worker processes {result['worker_cpu']:.1f} s "
          f"({result['worker_cpu'] / result['due'] * 1000:.2f} ms per e-mail); SMTP server and polling (this process) "
          f"{result['sink_cpu']:.1f} s ({result['sink_cpu'] / result['due'] * 1000:.2f} ms per e-mail)")
    print("  worker peak RSS (MB): " + ", ".join(f"{v:.1f}" for v in result["rss"].values()))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
