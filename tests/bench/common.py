"""Shared pieces of the benchmarks: environment, database and Redis setup, test data, processes, memory.

Import :func:`configure` before anything touches Django: it fills in the
environment (which the gunicorn and Dramatiq processes started here inherit)
and starts Django with ``tests.bench.settings``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "var" / "bench"

DEFAULT_ENV = {
    # Its own database (created when missing) and Redis databases, never the suite's.
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/tinko_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/6",
    "CACHE_URL": "redis://127.0.0.1:6379/7",
    # Queues under their own prefix: the benchmarks delete only these keys.
    "DRAMATIQ_NAMESPACE": "tinko-bench",
}


def configure() -> None:
    """Fill in the environment and start Django. Refuses a database whose name lacks "bench"
    (the benchmarks empty its tables)."""
    for name, value in DEFAULT_ENV.items():
        if not os.environ.get(name):
            os.environ[name] = value
    os.environ["TINKO_DOTENV"] = ""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.bench.settings"
    # One JSON access-log line per request, as in production, to a file (see start_gunicorn).
    os.environ.setdefault("LOG_LEVEL", "INFO")
    name = urlparse(os.environ["DATABASE_URL"]).path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"DATABASE_URL names the database {name!r}: the benchmarks empty its tables, so its name must contain 'bench'")
    _create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _create_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


# --- Data ----------------------------------------------------------------------------------------

DATA_TABLES = [
    "payments_sandboxcharge", "recovery_failureevent", "recovery_recoveryattempt", "recovery_recoverylink",
    "payments_payment", "payments_customer", "tinko_auditevent", "tinko_idempotencyrecord", "tinko_outboundemail",
    "tinko_apirequestlog",
]


def reset_data() -> None:
    """Empty the tables the benchmarks fill (organizations, keys, policies and rules stay)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
        cursor.execute(f"ANALYZE {', '.join(DATA_TABLES)}")


def analyze_data() -> None:
    """Refresh the planner's statistics, as autovacuum does on a running system.

    Right after ``reset_data`` the statistics say the tables are empty; after
    the single-event phase has added tens of thousands of rows, plans made for
    empty tables (sequential scans with ``= ANY(1,000 values)`` filters) would
    be measured instead of the steady state.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(DATA_TABLES)}")


def preload(organization, *, count: int = 20_000) -> None:
    """Earlier failures for the merchant, then fresh statistics: the steady state of a
    running system (autovacuum keeps statistics), not tables the planner thinks empty."""
    from recovery.ingestion import record_failures
    from recovery.reports import parse_report

    rng = random.Random("preload")
    for start in range(0, count, 1000):
        reports = [parse_report(failure_report(f"pre-{i}", rng)) for i in range(start, start + 1000)]
        record_failures(organization=organization, reports=reports)
    analyze_data()


def reset_broker() -> None:
    """Delete this benchmark's queues (keys under DRAMATIQ_NAMESPACE) from the broker's Redis database."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{os.environ['DRAMATIQ_NAMESPACE']}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])


def queued_messages(queue: str = "recovery") -> int:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return client.llen(f"{os.environ['DRAMATIQ_NAMESPACE']}:{queue}")


@dataclass
class Merchant:
    organization: object
    api_key: str  # plaintext


def merchant() -> Merchant:
    """The bench organization (created once) with a fresh API key."""
    from tinko import services
    from tinko.models import Organization, User

    user = User.objects.filter(email="bench@tinko.test").first() or User.objects.create_user(
        email="bench@tinko.test", password=None
    )
    org = Organization.objects.filter(slug="bench").first() or services.create_organization(
        name="Bench", owner=user, slug="bench", timezone="UTC", default_currency="USD"
    )
    _, plaintext = services.create_api_key(organization=org, name="Benchmark", created_by=user)
    return Merchant(org, plaintext)


# A realistic mix of failures: (weight, provider, failure, card brand). Soft declines dominate, as in practice.
FAILURE_MIX = [
    (30, "stripe", {"code": "card_declined", "decline_code": "insufficient_funds", "advice_code": "try_again_later",
                    "message": "Your card has insufficient funds."}, "visa"),
    (14, "stripe", {"code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined."}, "visa"),
    (8, "stripe", {"code": "card_declined", "decline_code": "do_not_honor", "message": "Your card was declined."}, "visa"),
    (7, "stripe", {"code": "expired_card", "decline_code": "expired_card", "message": "Your card has expired."}, "visa"),
    (6, "stripe", {"code": "authentication_required", "decline_code": "authentication_required",
                   "message": "This transaction requires authentication."}, "visa"),
    (5, "stripe", {"code": "processing_error", "message": "An error occurred while processing your card."}, "visa"),
    (3, "stripe", {"code": "card_declined", "decline_code": "lost_card", "advice_code": "do_not_try_again",
                   "message": "Your card was declined."}, "visa"),
    (6, "stripe", {"code": "card_declined", "decline_code": "insufficient_funds", "network_advice_code": "25",
                   "network_decline_code": "51", "message": "Your card has insufficient funds."}, "mastercard"),
    (2, "stripe", {"code": "card_declined", "decline_code": "do_not_honor", "network_advice_code": "03",
                   "message": "Your card was declined."}, "mastercard"),
    (8, "razorpay", {"code": "BAD_REQUEST_ERROR", "decline_code": "card_declined",
                     "message": "Payment processing failed because card was declined"}, "visa"),
    (5, "razorpay", {"code": "BAD_REQUEST_ERROR", "decline_code": "card_expired", "message": "Card expired"}, "mastercard"),
    (6, "other", {"message": "Insufficient funds in account"}, "visa"),
]
_WEIGHTS = [row[0] for row in FAILURE_MIX]
CURRENCIES = ["USD", "USD", "USD", "EUR", "GBP", "INR"]
TIMEZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Europe/London", ""]


def failure_report(reference: str, rng: random.Random, *, provider: str | None = None, failure: dict | None = None,
                   last4: str | None = None) -> dict:
    """One ingestion request body: a unique reference (and event id, card, customer), a failure from the mix."""
    _, mix_provider, mix_failure, brand = rng.choices(FAILURE_MIX, weights=_WEIGHTS)[0]
    customer_id = f"cus_{reference}"
    report = {
        "event_id": f"evt_{reference}",
        "reference": reference,
        "amount": rng.randint(100, 250_000),
        "currency": rng.choice(CURRENCIES),
        "provider": provider or mix_provider,
        "provider_payment_id": f"pi_{reference}",
        "description": "Pro plan, monthly",
        "failure": failure or mix_failure,
        "customer": {
            "id": customer_id, "email": f"{customer_id}@example.com", "name": "Ada Lovelace", "locale": "en",
            "timezone": rng.choice(TIMEZONES),
        },
        "payment_method": {
            "brand": brand, "last4": last4 or f"{rng.randint(0, 9999):04d}", "exp_month": rng.randint(1, 12),
            "exp_year": rng.randint(2027, 2031), "fingerprint": f"fp_{reference}",
        },
        "metadata": {"plan": "pro", "invoice": f"in_{reference}"},
    }
    if not report["customer"]["timezone"]:
        del report["customer"]["timezone"]
    return report


# --- Processes and memory ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command (which may contain spaces) in parentheses: state, ppid, ...
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    result = []
    for child in children(pid):
        result.append(child)
        result.extend(descendants(child))
    return result


def status_field(pid: int, field: str) -> int:
    """A kB figure from /proc/<pid>/status (VmHWM: peak resident set size; VmRSS: now), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DatabaseCpu:
    """CPU seconds of the PostgreSQL processes working for the bench database, when PostgreSQL runs on this machine.

    Its backends (``pg_stat_activity`` rows of this database: the servers' connections and
    autovacuum, this process's own) are read from /proc at :meth:`start` and :meth:`stop`; a backend that ended
    in between is missed, one that started is counted whole. ``seconds`` stays None when
    the processes cannot be read (PostgreSQL elsewhere, another user's processes).
    """

    def __init__(self):
        self.before: dict[int, float] = {}
        self.seconds: float | None = None

    @staticmethod
    def _backends() -> dict[int, float] | None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [pid for (pid,) in cursor.fetchall()]
        found = {}
        for pid in pids:
            try:
                found[pid] = cpu_seconds(pid)
            except (OSError, ValueError, IndexError):
                continue
        return found if found or not pids else None

    def start(self) -> "DatabaseCpu":
        self.before = self._backends() or {}
        return self

    def stop(self) -> float | None:
        after = self._backends()
        if after is not None:
            self.seconds = sum(cpu - self.before.get(pid, 0.0) for pid, cpu in after.items())
        return self.seconds


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def start_process(args: list[str], *, log_name: str, env: dict | None = None) -> subprocess.Popen:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / log_name, "ab")
    return subprocess.Popen(
        args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen, *, timeout: float = 30) -> None:
    """SIGTERM the process we started (it stops its own workers), then wait."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def mb(kb: int) -> float:
    return kb / 1024
