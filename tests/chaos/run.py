"""``make chaos``: faults against a production-like Tinko on its own PostgreSQL and Redis.

Starts a PostgreSQL cluster (initdb into a temporary directory, run as the
``postgres`` user, on a free port) and a redis-server on a free port, then the
production processes on them: gunicorn (2 × 4 threads), ``rundramatiq`` (2 × 4) and three
``run_scheduler`` with the default tick and leases. The shared PostgreSQL and
Redis are never touched. Then, one after the other:

1. **kill -9 of the worker mid-run** (three schedulers claiming): 600 due
   re-charges; the worker is killed while it runs them and a new one started.
2. **Redis stopped 60 s under 20 events/s**: ingestion goes on; the attempts
   that fall due meanwhile (the policy's first retry is 60 s after an event) are
   enqueued when Redis is back.
3. **PostgreSQL restarted** under 20 events/s: the API answers 503 with
   Retry-After while it is down; the client retries those.
4. **SIGTERM** to every process under load; each must stop on its own (exit 0)
   within 30 s, and the restarted set carries on.

Each prints its counts: events accepted vs stored, charges vs recovered
payments, attempts started more than once, catch-up time (from the end of
the fault until every attempt that was due or in flight has finished). The
run fails on any lost event, any payment charged twice, an attempt left
unfinished, or a catch-up over 30 s. Not part of ``make test`` (about 6
minutes); run it inside ``flock /tmp/tinko-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
CATCH_UP_LIMIT = 30.0
RATE = 20  # events per second during the Redis and PostgreSQL faults


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Our own PostgreSQL and Redis ----------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    if candidates:
        return str(candidates[-1])
    found = shutil.which(name)
    if not found:
        sys.exit(f"make chaos needs PostgreSQL's {name} (Debian: postgresql)")
    return found


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + args, check=True, capture_output=True, text=True, **kwargs)


class Postgres:
    def __init__(self, root: Path):
        self.dir = root / "pg"
        self.dir.mkdir()
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(self.dir, "postgres")
        _as_postgres([_pg_bin("initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8"])

    def start(self):
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                      f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"])

    def stop(self, mode: str = "fast"):
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop"])

    def url(self, name: str = "tinko_chaos") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"


class Redis:
    def __init__(self, root: Path):
        self.port = free_port()
        self.log = root / "redis.log"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--logfile", str(self.log)],
        )
        for _ in range(100):
            try:
                with closing(socket.create_connection(("127.0.0.1", self.port), timeout=0.2)):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


# --- Tinko's processes ------------------------------------------------------------------------------------


class Stack:
    """gunicorn, one rundramatiq, three run_scheduler, each in its own process group, logs under ``root``."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env
        self.web_port = int(env["PORT"])
        self.processes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str]):
        log_file = open(self.root / f"{name}.log", "a")
        self.processes[name] = subprocess.Popen(args, cwd=BASE_DIR, env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def start_web(self):
        self._start("web", [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "tinko.wsgi:application"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _ = http("GET", self.web_port, "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not come up: " + (self.root / "web.log").read_text()[-2000:])

    def start_worker(self):
        self._start("worker", [sys.executable, "manage.py", "rundramatiq", "--processes", "2", "--threads", "4"])

    def start_schedulers(self):
        for n in range(3):
            self._start(f"scheduler{n}", [sys.executable, "manage.py", "run_scheduler"])

    def start_all(self):
        self.start_web()
        self.start_worker()
        self.start_schedulers()

    def kill9(self, name: str):
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def sigterm_all(self, timeout: float = 30) -> dict[str, tuple[int | None, float]]:
        """SIGTERM to every process (its group); (exit code, seconds to stop) each."""
        started = time.monotonic()
        for process in self.processes.values():
            # To the main process only, as an orchestrator does: it stops its children itself (a second
            # SIGTERM reaching Dramatiq's worker processes directly would make them quit at once).
            os.kill(process.pid, signal.SIGTERM)
        results = {}
        for name, process in self.processes.items():
            try:
                code = process.wait(max(0.1, timeout - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = None
            results[name] = (code, round(time.monotonic() - started, 1))
        self.processes.clear()
        return results

    def stop_all(self):
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.processes.clear()


def http(method: str, port: int, path: str, body: dict | None = None, headers: dict | None = None,
         timeout: float = 10) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Host": "127.0.0.1", "Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- The load ----------------------------------------------------------------------------------------------


def report(reference: str) -> dict:
    return {
        "event_id": f"evt_{reference}", "reference": reference, "amount": 2500, "currency": "USD", "provider": "sandbox",
        "failure": {"code": "card_declined", "decline_code": "insufficient_funds"},
        "customer": {"id": f"cus_{reference}", "email": f"{reference}@example.com", "timezone": "UTC"},
        "payment_method": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030,
                           "fingerprint": f"fp_{reference}"},
    }


class Load(threading.Thread):
    """Open loop at ``rate`` events/s for ``seconds``; a 503 is retried (same event id) after its Retry-After."""

    def __init__(self, port: int, key: str, *, rate: int, seconds: float, prefix: str):
        super().__init__(daemon=True)
        self.port, self.key, self.rate, self.seconds, self.prefix = port, key, rate, seconds, prefix
        self.sent: list[str] = []
        self.accepted: list[str] = []
        self.statuses: dict[int, int] = {}
        self.slow = 0
        self.failed: list[str] = []
        self._lock = threading.Lock()

    def _one(self, reference: str):
        for _ in range(60):
            started = time.monotonic()
            try:
                status, _ = http("POST", self.port, "/api/v1/events/payment_failed", report(reference),
                                 {"Authorization": f"Bearer {self.key}"}, timeout=15)
            except OSError:
                status = 0
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if time.monotonic() - started > 2:
                    self.slow += 1
            if status in (200, 201):
                with self._lock:
                    self.accepted.append(reference)
                return
            if status not in (0, 503):
                break
            time.sleep(1)
        with self._lock:
            self.failed.append(reference)

    def run(self):
        threads = []
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < self.seconds:
            reference = f"{self.prefix}-{n}"
            n += 1
            self.sent.append(reference)
            thread = threading.Thread(target=self._one, args=(reference,), daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(max(0.0, started + n / self.rate - time.monotonic()))
        for thread in threads:
            thread.join(120)


# --- Counting in the chaos database ----------------------------------------------------------------------


def django_setup(env: dict):
    os.environ.update(env)
    import django

    django.setup()


def query(sql: str, params=()):
    from django.db import InterfaceError, OperationalError, connection

    for attempt in range(60):
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        except (OperationalError, InterfaceError):
            # The chaos database may be restarting.
            connection.close()
            time.sleep(1)
    raise RuntimeError(f"query failed: {sql}")


def _like(prefix: str) -> str:
    return f"{prefix}-%" if prefix else "%"


def make_due(prefix: str) -> int:
    """Every scheduled attempt of these payments becomes due now (as the policy's delay would, sooner)."""
    return query(
        "WITH due AS (UPDATE recovery_recoveryattempt a SET scheduled_for = now() FROM payments_payment p "
        "WHERE a.payment_id = p.id AND p.reference LIKE %s AND a.status = 'scheduled' RETURNING a.id) "
        "SELECT count(*) FROM due", [_like(prefix)])[0][0]


def pending_ids(prefix: str) -> list[int]:
    """Attempts of these payments that are due, queued or running: the work a fault must not lose or delay."""
    return [row[0] for row in query(
        "SELECT a.id FROM recovery_recoveryattempt a JOIN payments_payment p ON p.id = a.payment_id "
        "WHERE p.reference LIKE %s AND (a.status IN ('queued', 'running') OR (a.status = 'scheduled' "
        "AND a.scheduled_for <= now()))", [_like(prefix)])]


def wait_finished(ids: list[int], *, since: float, limit: float = 120) -> float:
    """Seconds from ``since`` until none of ``ids`` is due, queued or running any more."""
    while time.monotonic() - since < limit:
        left = query("SELECT count(*) FROM recovery_recoveryattempt WHERE id = ANY(%s) AND (status IN ('queued', "
                     "'running') OR (status = 'scheduled' AND scheduled_for <= now()))", [ids])[0][0] if ids else 0
        if left == 0:
            return round(time.monotonic() - since, 1)
        time.sleep(0.5)
    return float("inf")


def taken_by_workers(redis_port: int) -> set[int]:
    """Attempts in the messages the workers have taken from Redis and not acknowledged (prefetched or running)."""
    import redis as redis_client

    client = redis_client.Redis(port=redis_port)
    taken: set[int] = set()
    for key in client.keys("tinko:__acks__.*.recovery"):
        for message_id in client.smembers(key):
            data = client.hget("tinko:recovery.msgs", message_id)
            if data:
                taken.update(json.loads(data)["args"][0])
    return taken


def settle(prefix: str, limit: float = 180) -> None:
    """Let the rest of the work run (not timed): until nothing of ``prefix`` is due, queued or running."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and (make_due(prefix) or pending_ids(prefix)):
        time.sleep(1)


def money(prefix: str) -> dict:
    like = _like(prefix)
    rows = query(
        "SELECT count(DISTINCT p.id) FILTER (WHERE p.status = 'recovered'), "
        "count(c.id) FILTER (WHERE c.status = 'succeeded'), "
        "(SELECT count(*) FROM (SELECT c2.payment_id FROM payments_sandboxcharge c2 JOIN payments_payment p2 "
        " ON p2.id = c2.payment_id WHERE p2.reference LIKE %s AND c2.status = 'succeeded' "
        " GROUP BY c2.payment_id HAVING count(*) > 1) d), "
        "count(DISTINCT p.id) "
        "FROM payments_payment p LEFT JOIN payments_sandboxcharge c ON c.payment_id = p.id WHERE p.reference LIKE %s",
        [like, like])[0]
    started_twice = query(
        "SELECT count(*) FROM (SELECT attempt_id FROM chaos_started s JOIN recovery_recoveryattempt a ON a.id = s.attempt_id "
        "JOIN payments_payment p ON p.id = a.payment_id WHERE p.reference LIKE %s GROUP BY attempt_id "
        "HAVING count(*) > 1) t", [like])[0][0]
    return {"payments": rows[3], "recovered": rows[0], "charges": rows[1], "double_charged": rows[2],
            "attempts_started_more_than_once": started_twice}


def stored(references: list[str]) -> int:
    if not references:
        return 0
    return query("SELECT count(DISTINCT p.reference) FROM recovery_failureevent e JOIN payments_payment p "
                 "ON p.id = e.payment_id WHERE p.reference = ANY(%s)", [references])[0][0]


# --- The run ---------------------------------------------------------------------------------------------


class Failures(list):
    def check(self, ok: bool, what: str):
        if not ok:
            self.append(what)
            log(f"FAIL: {what}")


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="tinko-chaos-"))
    os.chmod(root, 0o755)
    pg, redis = Postgres(root), Redis(root)
    stack = None
    failures = Failures()
    figures = {}
    try:
        pg.start()
        redis.start()
        _as_postgres(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-c", "CREATE DATABASE tinko_chaos"])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
            "TINKO_DOTENV": "", "DJANGO_SETTINGS_MODULE": "tinko.settings", "DEBUG": "false",
            "SECRET_KEY": "chaos-only-" + "Vq7Lr2Xp9Kd4Zm8Ns3Bw6Hc1Jf5Tg0Ya" * 2,
            "TINKO_ENCRYPTION_KEYS": "hHi48YOB8laP8vbGqRPB1GDkOQr-N1PHKvS7XdiPsJ4=",
            "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false", "DATABASE_URL": pg.url(),
            "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0", "CACHE_URL": f"redis://127.0.0.1:{redis.port}/1",
            "PORT": str(free_port()), "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", "LOG_LEVEL": "WARNING",
            # One client sends every event: the per-key limit is not under test here.
            "TINKO_API_RATE": "100000/min", "TINKO_WEBHOOK_RATE": "100000/min",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=BASE_DIR, env=env, check=True)
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=BASE_DIR, env=env, check=True)
        django_setup(env)
        key = _merchant()
        # Every move of an attempt to "running" is written down, to count attempts started more than once.
        query("CREATE TABLE chaos_started (attempt_id bigint, claims int, at timestamptz DEFAULT clock_timestamp())")
        query("CREATE FUNCTION chaos_note() RETURNS trigger AS $$ BEGIN INSERT INTO chaos_started (attempt_id, claims) "
              "VALUES (NEW.id, NEW.claims); RETURN NEW; END $$ LANGUAGE plpgsql")
        query("CREATE TRIGGER chaos_note AFTER UPDATE OF status ON recovery_recoveryattempt FOR EACH ROW "
              "WHEN (NEW.status = 'running' AND OLD.status <> 'running') EXECUTE FUNCTION chaos_note()")
        stack = Stack(root, env)
        stack.start_all()
        port = stack.web_port

        # 1. kill -9 of the worker mid-run, three schedulers claiming.
        log("1/4 kill -9 of the worker mid-run (three schedulers)")
        n = 600
        _ingest_fast(port, key, "kill", n)
        make_due("kill")
        started = time.monotonic()
        while query("SELECT count(*) FROM recovery_recoveryattempt WHERE status = 'running'")[0][0] == 0:
            if time.monotonic() - started > 60:
                break
            time.sleep(0.05)
        time.sleep(1.0)
        running = [row[0] for row in query("SELECT id FROM recovery_recoveryattempt WHERE status = 'running'")]
        stack.kill9("worker")
        killed_at = time.monotonic()
        # In flight on the dead worker: what it was running, and the messages it had taken.
        in_flight = sorted(set(running) | taken_by_workers(redis.port))
        backlog = len(pending_ids("kill"))
        stack.start_worker()
        catch_up = wait_finished(in_flight, since=killed_at)
        drained = wait_finished(pending_ids("kill"), since=killed_at, limit=300)
        settle("kill")
        counts = money("kill")
        figures["kill -9"] = {"events": n, "running_at_kill": len(running), "in_flight_on_the_dead_worker": len(in_flight),
                              "not_finished_at_kill": backlog, "catch_up_s": catch_up, "all_done_s": drained, **counts}
        log(f"   {figures['kill -9']}")
        failures.check(counts["payments"] == n, f"kill -9: {counts['payments']} of {n} payments stored")
        failures.check(counts["recovered"] == n, f"kill -9: {counts['recovered']} of {n} payments recovered")
        failures.check(counts["charges"] == counts["recovered"], "kill -9: charges differ from recovered payments")
        failures.check(counts["double_charged"] == 0, f"kill -9: {counts['double_charged']} payments charged twice")
        failures.check(catch_up <= CATCH_UP_LIMIT, f"kill -9: catch-up {catch_up} s")

        # 2. Redis stopped 60 s under 20 events/s.
        log("2/4 Redis stopped for 60 s under 20 events/s")
        load = Load(port, key, rate=RATE, seconds=75, prefix="redis")
        load.start()
        time.sleep(5)
        redis.stop()
        down_at = time.monotonic()
        # Attempts fall due during the outage as the policy planned them (60 s after each event).
        time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
        pending = pending_ids("redis")
        redis.start()
        back_at = time.monotonic()
        catch_up = wait_finished(pending, since=back_at)
        load.join()
        _judge(failures, figures, "redis down 60 s", "redis", load=load, pending=pending, catch_up=catch_up,
               answers={201})

        # 3. PostgreSQL restarted under 20 events/s.
        log("3/4 PostgreSQL restarted under 20 events/s")
        load = Load(port, key, rate=RATE, seconds=30, prefix="pg")
        load.start()
        time.sleep(5)
        make_due("pg")
        pg.stop("fast")
        time.sleep(5)
        pg.start()
        back_at = time.monotonic()
        pending = pending_ids("pg")
        catch_up = wait_finished(pending, since=back_at)
        load.join()
        _judge(failures, figures, "postgresql restart", "pg", load=load, pending=pending, catch_up=catch_up,
               answers={0, 201, 503})

        # 4. SIGTERM to everything under load, then start again.
        log("4/4 SIGTERM to every process under load")
        load = Load(port, key, rate=RATE, seconds=20, prefix="term")
        load.start()
        time.sleep(5)
        make_due("term")
        stopped = stack.sigterm_all()
        pending = pending_ids("term")
        stack = Stack(root, env)
        stack.start_all()
        back_at = time.monotonic()
        catch_up = wait_finished(pending, since=back_at)
        load.join()
        # 200: a retried event whose first try was stored just before the connection closed (a duplicate, absorbed).
        _judge(failures, figures, "sigterm", "term", load=load, pending=pending, catch_up=catch_up,
               answers={0, 200, 201, 503}, stopped=stopped)
        failures.check(all(code == 0 for code, _ in stopped.values()), f"sigterm: exits {stopped}")

        total = money("")
        figures["all"] = total
        failures.check(total["double_charged"] == 0, "payments charged twice overall")
    finally:
        if stack is not None:
            stack.stop_all()
        redis.stop()
        try:
            pg.stop("immediate")
        except Exception:
            pass
    print("\n== make chaos ==")
    print(json.dumps(figures, indent=2))
    if failures:
        print(f"FAILED ({len(failures)}): " + "; ".join(failures))
        print(f"logs: {root}")
        return 1
    shutil.rmtree(root, ignore_errors=True)
    print("PASSED: no lost event, no double charge, every catch-up within 30 s")
    return 0


def _judge(failures, figures, name: str, prefix: str, *, load: Load, pending: list[int], catch_up: float,
           answers: set[int], **extra) -> None:
    """Let the rest run, then count and check one stage: nothing lost, nothing charged twice, caught up in time."""
    settle(prefix)
    counts = money(prefix)
    kept = stored(load.accepted)
    figures[name] = {**extra, "sent": len(load.sent), "accepted": len(load.accepted), "stored": kept,
                     "answers": load.statuses, "answers_over_2s": load.slow, "pending_at_restart": len(pending),
                     "catch_up_s": catch_up, **counts}
    log(f"   {figures[name]}")
    failures.check(set(load.statuses) <= answers, f"{name}: unexpected answers {load.statuses}")
    failures.check(kept == len(load.accepted) == len(load.sent),
                   f"{name}: sent {len(load.sent)}, accepted {len(load.accepted)}, stored {kept}")
    failures.check(counts["double_charged"] == 0, f"{name}: payments charged twice")
    failures.check(counts["recovered"] == counts["payments"], f"{name}: payments left unrecovered")
    failures.check(catch_up <= CATCH_UP_LIMIT, f"{name}: catch-up {catch_up} s")


def _merchant() -> str:
    from recovery.models import RetryPolicy
    from recovery.steps import from_legacy
    from tinko import services
    from tinko.models import User

    owner = User.objects.create_user(email="chaos@example.com", password=uuid.uuid4().hex)
    org = services.create_organization(name="Chaos", owner=owner)
    # Re-charges only, at any hour: the faults, not the respect rules, are under test.
    steps = from_legacy(max_retries=4, initial_delay_seconds=60, backoff_multiplier=2, max_delay_seconds=7 * 86400,
                        max_notifications=0, notification_interval_seconds=3600, notify_on_hard_decline=False,
                        category_overrides={})
    RetryPolicy.objects.filter(organization=org).update(channels=[], quiet_hours_start=None, quiet_hours_end=None,
                                                        steps=steps, payday_alignment=False)
    _, key = services.create_api_key(organization=org, name="chaos", created_by=owner)
    return key


def _ingest_fast(port: int, key: str, prefix: str, n: int) -> None:
    for start in range(0, n, 500):
        events = [report(f"{prefix}-{i}") for i in range(start, min(n, start + 500))]
        status, body = http("POST", port, "/api/v1/events/payment_failed/batch", {"events": events},
                            {"Authorization": f"Bearer {key}"}, timeout=120)
        if status != 200:
            raise RuntimeError(f"batch ingestion answered {status}: {body[:300]!r}")


if __name__ == "__main__":
    sys.exit(main())
