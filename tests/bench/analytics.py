"""Benchmark of the recovery dashboard: 100,000 then 1,000,000 payments (3 million attempts) in one organization.

    make bench-analytics                                   # or:
    .venv/bin/python -m tests.bench.analytics [--small 100000 --large 1000000 --requests 40]

Targets (issue "Analytics", Speed): the dashboard page (console home, 90 days)
at most 250 ms server time median at a million payments, and at most three
times its median at a hundred thousand, both measured in this run.

Runs against its own database (``BENCH_ANALYTICS_DATABASE_URL``, default
``tinko_bench_analytics``, created when missing, its data tables emptied at
the start; the name must contain "bench"). Server time is the whole Django
request (middleware, session, view, template) through the test client, in
process, without the network.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/tinko_bench_analytics"
TARGET_MS = 250
MAX_RATIO = 3.0


def _setup():
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_ANALYTICS_DATABASE_URL") or DEFAULT_DATABASE
    from tests.bench import common

    common.configure()
    from django.core.management import call_command

    # Production serves hashed static files (whitenoise's manifest storage): the page needs the manifest.
    call_command("collectstatic", interactive=False, verbosity=0)
    return common


def _reset(common) -> None:
    from django.db import connection

    tables = ["analytics_dailyrollup", "analytics_recoverytimerollup", "analytics_compliancerollup",
              "analytics_rollupstate", *common.DATA_TABLES]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _merchant():
    from tinko import services
    from tinko.models import Organization, User

    user = User.objects.filter(email="analytics-bench@tinko.test").first() or User.objects.create_user(
        email="analytics-bench@tinko.test", password=None
    )
    org = Organization.objects.filter(slug="analytics-bench").first() or services.create_organization(
        name="Analytics Bench", slug="analytics-bench", owner=user, timezone="Europe/Berlin", default_currency="EUR"
    )
    return user, org


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE payments_payment, recovery_recoveryattempt, recovery_failureevent, "
                       "analytics_dailyrollup, analytics_recoverytimerollup, analytics_compliancerollup")


def _time_page(client, url: str, *, requests: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        assert client.get(url, secure=True).status_code == 200
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url, secure=True)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def _touch(org, n: int) -> None:
    """A busy minute: ``n`` payments of the last three weeks change (recoveries landing)."""
    from datetime import timedelta

    from django.utils import timezone

    from recovery.models import Payment

    ids = list(
        Payment.objects.filter(organization=org, first_failed_at__gte=timezone.now() - timedelta(days=21))
        .order_by("?").values_list("pk", flat=True)[:n]
    )
    Payment.objects.filter(pk__in=ids).update(updated_at=timezone.now())


def _change_one(org, i: int, candidates: list[int]) -> None:
    """One change as a merchant makes it: a new failure today (even ``i``) or a recovery of an open payment (odd)."""
    from django.utils import timezone

    from recovery.models import Customer, Payment

    now = timezone.now()
    if i % 2 == 0:
        customer = Customer.objects.filter(organization=org).first()
        Payment.objects.create(
            organization=org, customer=customer, reference=f"after-change-{i}-{now.timestamp()}", provider="sandbox",
            amount=4999, currency=org.default_currency, category="insufficient_funds", status="recovering",
            failure_count=1, first_failed_at=now, last_failed_at=now, card_brand="visa", updated_at=now,
        )
    else:
        payment = Payment.objects.get(pk=candidates[i // 2])
        Payment.objects.filter(pk=payment.pk).update(
            status="recovered", recovered_at=now, recovered_amount=payment.amount, recovered_channel="psp", updated_at=now,
        )


def _time_after_changes(client, org, url: str, *, changes: int, gap: float) -> tuple[list[float], bool]:
    """Each view right after one change (a failure or a recovery), ``gap`` seconds apart; and whether every view showed it.

    A view applies the differences of every payment changed within LIVE_MARGIN (10 s) of the last refresh,
    so with a gap under 10 s a view also reads the changes before it again: the busier case.
    """
    import re
    from datetime import timedelta

    from django.utils import timezone

    from recovery.models import Payment

    candidates = list(
        Payment.objects.filter(organization=org, status__in=["failed", "recovering"], holdout_group__in=["", "treatment"],
                               first_failed_at__gte=timezone.now() - timedelta(days=21))
        .order_by("?").values_list("pk", flat=True)[: changes // 2 + 1]
    )
    pattern = re.compile(r'data-kpi-count="failed">\s*([\d,]+)')
    times, all_shown = [], True
    for i in range(changes):
        before = client.get(url, secure=True).content.decode()
        failed_before = int(pattern.search(before).group(1).replace(",", ""))
        time.sleep(gap)
        _change_one(org, i, candidates)
        started = time.perf_counter()
        response = client.get(url, secure=True)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        content = response.content.decode()
        failed_after = int(pattern.search(content).group(1).replace(",", ""))
        # A new failure adds one payment to the default currency's count; a recovery leaves it as it is.
        all_shown &= failed_after == failed_before + (1 if i % 2 == 0 else 0) and 'data-freshness="live"' in content
    return times, all_shown


def phase(org, user, *, total: int, days: int, requests: int, warmup: int, seed: int, changes: int = 20,
          gap: float = 11.0) -> dict:
    from django.test import Client

    from analytics import synthetic
    from analytics.models import DailyRollup, RecoveryTimeRollup
    from analytics.rollups import refresh
    from recovery.models import Payment, RecoveryAttempt

    have = Payment.objects.filter(organization=org).count()
    started = time.monotonic()
    counts = synthetic.generate(organization=org, payments=total - have, days=days, seed=seed, holdout_percent=10,
                                start_number=have + 1) if total > have else {}
    load_s = time.monotonic() - started
    _analyze()
    started = time.monotonic()
    refresh(org, full=True)
    rebuild_s = time.monotonic() - started
    _analyze()
    _touch(org, 1000)
    started = time.monotonic()
    days_rerolled = refresh(org)
    incremental_s = time.monotonic() - started

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    times = _time_page(client, "/console/?period=90d", requests=requests, warmup=warmup)
    after, shown = _time_after_changes(client, org, "/console/?period=90d", changes=changes, gap=gap)
    busy, busy_shown = _time_after_changes(client, org, "/console/?period=90d", changes=changes, gap=1.0)
    return {
        "after_change_median_ms": statistics.median(after),
        "after_change_max_ms": max(after),
        "after_change_shown": shown,
        "busy_median_ms": statistics.median(busy),
        "busy_max_ms": max(busy),
        "busy_shown": busy_shown,
        "payments": Payment.objects.filter(organization=org).count(),
        "attempts": RecoveryAttempt.objects.filter(organization=org).count(),
        "added": counts,
        "load_s": load_s,
        "rebuild_s": rebuild_s,
        "incremental_s": incremental_s,
        "days_rerolled": days_rerolled,
        "rollup_rows": DailyRollup.objects.filter(organization=org).count()
        + RecoveryTimeRollup.objects.filter(organization=org).count(),
        "median_ms": statistics.median(times),
        "p95_ms": sorted(times)[int(len(times) * 0.95) - 1],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=100_000, help="payments in the first measurement (default 100,000)")
    parser.add_argument("--large", type=int, default=1_000_000, help="payments in the second (default 1,000,000)")
    parser.add_argument("--days", type=int, default=365, help="first failures spread over this many days (default 365)")
    parser.add_argument("--requests", type=int, default=40, help="timed page views per size (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed page views first (default 5)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the payments already in the database (top them up to --large) and time only that size")
    parser.add_argument("--keep", action="store_true", help="leave the data in the database at the end (for --reuse)")
    parser.add_argument("--changes", type=int, default=20,
                        help="views timed right after one change (a failure or a recovery), per size and case (default 20)")
    args = parser.parse_args(argv)

    common = _setup()
    # One JSON access-log line per request would flood the terminal; the request itself is unchanged.
    logging.getLogger("tinko.access").setLevel(logging.WARNING)
    if not args.reuse:
        _reset(common)
    user, org = _merchant()
    results = []
    sizes = [(args.large, 2)] if args.reuse else [(args.small, 1), (args.large, 2)]
    for size, seed in sizes:
        print(f"-- {size:,} payments: loading, rolling up, timing {args.requests} views of /console/?period=90d", flush=True)
        result = phase(org, user, total=size, days=args.days, requests=args.requests, warmup=args.warmup, seed=seed,
                       changes=args.changes)
        results.append(result)
        print(
            f"   {result['payments']:,} payments, {result['attempts']:,} attempts (load {result['load_s']:.0f} s); "
            f"full rollup {result['rebuild_s']:.1f} s; 1,000 changed payments re-rolled ({result['days_rerolled']} days) "
            f"in {result['incremental_s']:.2f} s; {result['rollup_rows']:,} rollup rows in all",
            flush=True,
        )
        print(f"   dashboard, 90 days: median {result['median_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms", flush=True)
        print(f"   first view after a change (11 s apart): median {result['after_change_median_ms']:.1f} ms, "
              f"max {result['after_change_max_ms']:.1f} ms; every change shown: {result['after_change_shown']}", flush=True)
        print(f"   first view after a change (1 s apart, busy): median {result['busy_median_ms']:.1f} ms, "
              f"max {result['busy_max_ms']:.1f} ms; every change shown: {result['busy_shown']}", flush=True)
    if args.reuse:
        small = large = results[0]
    else:
        small, large = results
    ratio = large["median_ms"] / small["median_ms"]
    ok_time = large["median_ms"] <= TARGET_MS
    ok_ratio = ratio <= MAX_RATIO
    print("\nSummary")
    print(f"  {'measure':<48} {'value':>12} {'target':>10}  result")
    print(f"  {'median at ' + format(small['payments'], ',') + ' payments':<48} {small['median_ms']:>10.1f}ms {'':>10}")
    print(f"  {'median at ' + format(large['payments'], ',') + ' payments':<48} {large['median_ms']:>10.1f}ms "
          f"{'<= ' + str(TARGET_MS) + 'ms':>10}  {'PASS' if ok_time else 'FAIL'}")
    print(f"  {'ratio large / small':<48} {ratio:>12.2f} {'<= ' + str(MAX_RATIO):>10}  {'PASS' if ok_ratio else 'FAIL'}")
    ok_after = large["after_change_median_ms"] <= TARGET_MS and large["after_change_shown"]
    ok_busy = large["busy_median_ms"] <= TARGET_MS and large["busy_shown"]
    print(f"  {'first view after a change (median, shown)':<48} {large['after_change_median_ms']:>10.1f}ms "
          f"{'<= ' + str(TARGET_MS) + 'ms':>10}  {'PASS' if ok_after else 'FAIL'}")
    print(f"  {'same, changes 1 s apart (median, shown)':<48} {large['busy_median_ms']:>10.1f}ms "
          f"{'<= ' + str(TARGET_MS) + 'ms':>10}  {'PASS' if ok_busy else 'FAIL'}")
    if not args.keep:
        _reset(common)
    return 0 if ok_time and (ok_ratio or args.reuse) and ok_after and ok_busy else 1


if __name__ == "__main__":
    sys.exit(main())
