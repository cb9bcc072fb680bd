"""Benchmarks of the console's Payments list and the customer's pay page (the pages' "Speed" targets).

    .venv/bin/python -m tests.bench.pages            # or: make bench-pages
    .venv/bin/python -m tests.bench.pages --payments 1000000 --repeat 30

Runs in its own database (default ``tinko_bench_pages``, created when missing;
its name must contain "bench": the payments tables are emptied first). One
organization gets ``--payments`` payments (1,000,000 by default) and 100,000
customers, loaded with PostgreSQL ``COPY``, plus a second organization with
50,000 so that every query has to scope by tenant; then ``ANALYZE``, as
autovacuum would on a running system.

Server time is measured in-process with the production settings (DEBUG off)
through the whole Django stack (middleware, session, template): the median
of ``--repeat`` requests after warm-up, for the first page and for each filter
and search. Transfer size is the pay page's HTML plus every stylesheet and
script it loads, as bytes on the wire uncompressed and gzip-compressed
(whitenoise serves precompressed static files in production).

Targets (the issue's): payments list ≤ 200 ms for the first and any filtered
page; pay page ≤ 20 ms median server time and ≤ 60 KB total transfer. The
ratio column is measured ÷ target.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone as dt_timezone

PROVIDERS = [("stripe", 55), ("razorpay", 35), ("sandbox", 9), ("other", 1)]
STATUSES = [("recovering", 40), ("failed", 15), ("recovered", 30), ("exhausted", 12), ("cancelled", 3)]
CATEGORIES = [("insufficient_funds", 40), ("card_declined", 20), ("expired_card", 10), ("authentication_required", 8),
              ("processing_error", 7), ("invalid_card", 5), ("network_error", 4), ("fraud_or_stolen", 3),
              ("do_not_retry", 2), ("unknown", 1)]
CHANNELS = [("email", 45), ("psp", 35), ("sms", 10), ("link", 10)]


def _pick(rng, table):
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _configure():
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tinko_bench_pages")
    # The pay page's own per-address limit would refuse a benchmark's thousands of requests.
    os.environ.setdefault("TINKO_PAY_RATE", "100000000/min")
    # An access-log line per request would be measured too; production logs it to a collector.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from tests.bench import common

    common.configure()
    from django.core.management import call_command

    # Production serves hashed, precompressed static files (whitenoise's manifest storage).
    call_command("collectstatic", interactive=False, verbosity=0)


def load(organization, *, payments: int, customers: int, seed: str) -> None:
    """COPY ``customers`` customers and ``payments`` payments into ``organization`` (fast: ~100k rows/s)."""
    from django.db import connection

    rng = random.Random(seed)
    now = datetime.now(dt_timezone.utc)
    start = now - timedelta(days=365)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy("COPY payments_customer (organization_id, key, external_id, email, phone, name, locale, timezone, "
                      "opted_out_channels, provider_customer_id, created_at, updated_at) FROM STDIN") as copy:
            for i in range(customers):
                email = f"customer{i}@{seed}.example"
                copy.write_row((organization.pk, email, "", email, "", f"Customer {i}", "en", "UTC", "[]", "", start, start))
        cursor.execute("SELECT min(id) FROM payments_customer WHERE organization_id = %s", [organization.pk])
        first_customer = cursor.fetchone()[0]
        step = timedelta(days=365) / payments
        with raw.copy("COPY payments_payment (organization_id, reference, provider, provider_payment_id, customer_id, "
                      "amount, currency, description, metadata, card_brand, card_last4, card_fingerprint, status, "
                      "category, status_reason, limit_code, failure_count, first_failed_at, last_failed_at, recovered_channel, "
                      "recovered_amount, recovered_at, provider_customer_id, provider_payment_method_id, holdout_group, "
                      "created_at, updated_at) FROM STDIN") as copy:
            for i in range(payments):
                at = start + step * i
                status = _pick(rng, STATUSES)
                recovered = status == "recovered"
                amount = rng.randint(100, 50_000)
                copy.write_row((
                    organization.pk, f"{seed}-{i:08d}", _pick(rng, PROVIDERS), "", first_customer + rng.randrange(customers),
                    amount, "USD", "", "{}", "visa", f"{rng.randrange(10000):04d}", "", status, _pick(rng, CATEGORIES),
                    "", "", 1, at, at, _pick(rng, CHANNELS) if recovered else "", amount if recovered else None,
                    at + timedelta(days=2) if recovered else None, "", "", "", at, at,
                ))
        cursor.execute("ANALYZE payments_payment")
        cursor.execute("ANALYZE payments_customer")


def reset() -> None:
    from django.db import connection

    from tests.bench.common import DATA_TABLES

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")


def _client():
    from django.test import Client

    # As behind the TLS proxy of tests/bench/settings.py (production settings redirect plain HTTP).
    return Client(HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")


def _time(client, url, repeat: int) -> tuple[float, int, int]:
    """(median ms, status, bytes) of ``repeat`` GETs after 3 warm-ups."""
    for _ in range(3):
        response = client.get(url)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), response.status_code, len(response.content)


def bench_payments_list(organization, user, *, repeat: int) -> list[tuple]:
    from recovery.models import Payment

    client = _client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    some = Payment.objects.filter(organization=organization).order_by("pk")[500_000 % max(1, Payment.objects.count()) or 0]
    from payments import selectors

    cursor = selectors.payment_page(selectors.filtered_payments(organization)).next_cursor
    mid = some.created_at.date()
    scenarios = [
        ("first page", "/console/payments/"),
        ("second page (cursor)", f"/console/payments/?after={cursor}"),
        ("status = exhausted", "/console/payments/?status=exhausted"),
        ("status = cancelled (3%)", "/console/payments/?status=cancelled"),
        ("category = do_not_retry (2%)", "/console/payments/?category=do_not_retry"),
        ("provider = other (1%)", "/console/payments/?provider=other"),
        ("recovered through = link", "/console/payments/?channel=link"),
        ("date range (one week)", f"/console/payments/?date_from={mid - timedelta(days=7)}&date_to={mid}"),
        ("status + provider + category", "/console/payments/?status=recovering&provider=razorpay&category=expired_card"),
        ("search: e-mail", f"/console/payments/?q={some.customer.email}"),
        ("search: last4", f"/console/payments/?q={some.card_last4}"),
        ("search: reference prefix", f"/console/payments/?q={some.reference[:-2]}"),
        ("search: no match", "/console/payments/?q=no-such-reference"),
    ]
    rows = []
    for name, url in scenarios:
        median, status, size = _time(client, url, repeat)
        assert status == 200, (url, status)
        rows.append((f"payments list: {name}", median, 200.0, "ms", f"{size / 1024:.0f} KB HTML"))
    return rows


def bench_pay_page(organization, *, repeat: int) -> list[tuple]:
    from pathlib import Path

    from django.conf import settings

    from recovery.models import Payment
    from recovery.services import create_link

    # Each customer opens their own link, a few times at most: one link per request, as in production
    # (hammering one link would measure PostgreSQL's row-version chain of a single hot row instead).
    payments = list(Payment.objects.filter(organization=organization, status="recovering").order_by("pk")[: repeat + 10])
    tokens = [create_link(payment=p)[1] for p in payments]
    client = _client()
    for token in tokens[:10]:
        client.get(f"/pay/{token}/")
    times = []
    for token in tokens[10:]:
        started = time.perf_counter()
        response = client.get(f"/pay/{token}/")
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    median = statistics.median(times)
    html = client.get(f"/pay/{tokens[-1]}/").content
    assets = re.findall(rb'(?:href|src)="(/static/[^"]+\.(?:css|js))"', html)
    total, total_gz = len(html), len(gzip.compress(html))
    for asset in assets:
        path = Path(settings.STATIC_ROOT) / asset.decode().removeprefix(settings.STATIC_URL)
        data = path.read_bytes()
        total += len(data)
        compressed = path.with_name(path.name + ".gz")
        total_gz += len(compressed.read_bytes()) if compressed.exists() else len(gzip.compress(data))
    return [
        ("pay page: server time (median)", median, 20.0, "ms", f"{len(html) / 1024:.1f} KB HTML"),
        ("pay page: transfer, uncompressed", total / 1024, 60.0, "KB",
         f"HTML + {len(assets)} asset(s): {', '.join(a.decode() for a in assets)}; gzip {total_gz / 1024:.1f} KB"),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments of the measured organization")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per scenario (median reported)")
    parser.add_argument("--reuse", action="store_true", help="keep the data of a previous run with the same --payments")
    args = parser.parse_args(argv)
    _configure()

    from recovery.models import Payment
    from tinko import services
    from tinko.models import Organization, User

    user = User.objects.filter(email="bench-pages@tinko.test").first() or User.objects.create_user(
        email="bench-pages@tinko.test", password=None)
    org = Organization.objects.filter(slug="bench-pages").first() or services.create_organization(
        name="Bench pages", owner=user, slug="bench-pages", timezone="UTC", default_currency="USD")
    other = Organization.objects.filter(slug="bench-pages-other").first() or services.create_organization(
        name="Other tenant", owner=user, slug="bench-pages-other", timezone="UTC", default_currency="USD")
    if not (args.reuse and Payment.objects.filter(organization=org).count() == args.payments):
        reset()
        started = time.perf_counter()
        load(other, payments=50_000, customers=5_000, seed="other")
        load(org, payments=args.payments, customers=100_000, seed="bench")
        print(f"loaded {args.payments:,} + 50,000 payments with COPY in {time.perf_counter() - started:.1f} s", flush=True)

    # The console shows the user's first organization: make it the measured one.
    from tinko.models import Membership

    Membership.objects.filter(user=user, organization=other).delete()
    # The machine's own floor, in the same run: a bare request through the same middleware stack.
    baseline, _status, _size = _time(_client(), "/healthz", max(args.repeat, 100))
    print(f"baseline: GET /healthz (no database work) median {baseline:.1f} ms", flush=True)
    rows = bench_payments_list(org, user, repeat=args.repeat) + bench_pay_page(org, repeat=max(args.repeat * 10, 200))
    return 1 if print_summary(rows) else 0


def print_summary(rows: list[tuple]) -> bool:
    """The table of (name, value, target, unit, note) rows with ratio and PASS/FAIL; True if a target is missed."""
    failed = False
    width = max(len(r[0]) for r in rows)
    print(f"\n  {'benchmark':<{width}}  {'measured':>10}  {'target':>8}  {'ratio':>6}  verdict  note")
    for name, value, target, unit, note in rows:
        ratio = value / target
        verdict = "PASS" if value <= target else "FAIL"
        failed |= verdict == "FAIL"
        print(f"  {name:<{width}}  {value:>7.1f} {unit:<2}  {target:>5.0f} {unit:<2}  {ratio:>6.2f}  {verdict:<7}  {note}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
