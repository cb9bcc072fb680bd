"""Live scrapes: gunicorn with several workers, a Dramatiq worker and the scheduler, as production runs them.

Traffic goes through gunicorn (failure reports, a PSP webhook), the scheduler
claims the attempts and the worker re-charges through the sandbox, messages
customers and calls a merchant's webhook. Then each process's metrics are
scraped the way Prometheus does, and every metric that the shipped dashboard,
the alert rules and the worker autoscaler's query name must be in them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import promql_parser
import pytest
import yaml
from django.conf import settings
from django.utils import timezone

from notifications import webhooks
from payments import accounts
from recovery.models import AttemptStatus, RecoveryAttempt, RetryPolicy
from tests.notifications.test_webhooks import Receiver
from tests.ops.procs import BASE_DIR
from tests.ops.scrapes import samples
from tests.payments.conftest import STRIPE_WEBHOOK_SECRET
from tests.payments.psp import stripe_signature
from tests.recovery.conftest import report
from tinko import services

TOKEN = "live-metrics-token-0123456789abcdefghij"
MONITORING = BASE_DIR / "deploy" / "monitoring"
ADAPTER_RULES = BASE_DIR / "deploy" / "kubernetes" / "monitoring" / "prometheus-adapter-rules.yaml"
# What Grafana and prometheus-adapter put into a query before Prometheus sees it.
SUBSTITUTIONS = {"$__rate_interval": "5m", "$__interval": "1m", "<<.LabelMatchers>>": 'namespace="tinko"'}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None):
    """One request on a new connection (so that gunicorn hands them to different workers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Host": "localhost", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def total(found: dict, name: str, **labels) -> float:
    return sum(s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects; raises ValueError when it does not parse."""
    for placeholder, value in SUBSTITUTIONS.items():
        expression = expression.replace(placeholder, value)
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expression), visit)
    return names


def shipped_queries() -> dict[str, str]:
    """Every PromQL expression the repository ships, keyed by where it is."""
    queries = {}
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries[f"dashboard: {panel['title']} {target['refId']}"] = target["expr"]
    for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            queries[f"alert: {rule['alert']}"] = rule["expr"]
    adapter = yaml.safe_load(ADAPTER_RULES.read_text())
    for rule in yaml.safe_load(adapter["data"]["config.yaml"])["externalRules"]:
        queries[f"prometheus-adapter: {rule['name']['as']}"] = rule["metricsQuery"]
        queries[f"prometheus-adapter series: {rule['name']['as']}"] = rule["seriesQuery"]
    return queries


def test_every_shipped_query_parses_and_a_broken_one_would_not():
    queries = shipped_queries()
    assert len([q for q in queries if q.startswith("dashboard")]) >= 20
    assert {"alert: TinkoOldestDueAttemptTooOld", "alert: TinkoInboxProcessingErrors", "alert: TinkoPSPErrorRate",
            "alert: TinkoHigh5xxRate", "alert: TinkoMerchantWebhookEndpointDisabled"} <= set(queries)
    for where, query in queries.items():
        assert metric_names(query), where
    with pytest.raises(ValueError):
        metric_names("sum(rate(tinko_http_requests_total[5m])")


class Process:
    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        with open(self.log, "w") as log:
            self.popen = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def stop(self):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()

    def output(self) -> str:
        return self.log.read_text()


def wait_until(check, *, what: str, processes, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        for process in processes:
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited:\n{process.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout} s:\n" + "\n".join(
                f"--- {p.name}\n{p.output()[-3000:]}" for p in processes))
        time.sleep(0.3)


def scrape(port: int, *, token: str | None = None) -> dict:
    status, body = request(port, "GET", "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    assert status == 200, body
    return samples(body.decode())


@pytest.mark.django_db(transaction=True)
def test_live_processes_serve_every_signal_and_every_metric_the_dashboard_alerts_and_autoscaler_name(
    default_rules, owner, tmp_path, settings
):
    org = services.create_organization(name="Live Metrics", owner=owner, timezone="UTC", default_currency="USD")
    RetryPolicy.objects.filter(organization=org).update(quiet_hours_start=None, quiet_hours_end=None)
    _, key = services.create_api_key(organization=org, name="live", created_by=owner)
    stripe = accounts.connect_account(
        organization=org, provider="stripe", name="Live Stripe", actor=owner,
        secrets={"secret_key": "sk_test_51LiveMetrics00000004242", "webhook_secret": STRIPE_WEBHOOK_SECRET},
    )
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    receiver = Receiver()
    receiver.status = 500  # the merchant's endpoint is failing: deliveries are retried
    webhooks.create_endpoint(organization=org, url=receiver.url, events=["payment.recovered"], user=owner)

    db = settings.DATABASES["default"]
    web_port, worker_port, scheduler_port = free_port(), free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
        "TINKO_DOTENV": "", "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": os.environ["REDIS_URL"], "CACHE_URL": os.environ.get("CACHE_URL", os.environ["REDIS_URL"]),
        # Its own broker keys: nothing else in the suite sees these jobs.
        "DRAMATIQ_NAMESPACE": f"tinko-live-{uuid.uuid4().hex[:8]}",
        "TINKO_METRICS_TOKEN": TOKEN, "TINKO_METRICS_ADDR": "127.0.0.1", "TINKO_WEBHOOKS_ALLOW_PRIVATE": "true",
    }
    (tmp_path / "web").mkdir()
    (tmp_path / "worker").mkdir()
    processes = [
        Process("gunicorn", [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "tinko.wsgi:application"],
                {**env, "PORT": str(web_port), "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "2",
                 "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "web")}, tmp_path),
        Process("worker", [sys.executable, "manage.py", "rundramatiq", "--processes", "2", "--threads", "2"],
                {**env, "TINKO_WORKER_METRICS_PORT": str(worker_port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker")},
                tmp_path),
        Process("scheduler", [sys.executable, "manage.py", "run_scheduler"],
                {**env, "TINKO_SCHEDULER_TICK": "1", "TINKO_SCHEDULER_METRICS_PORT": str(scheduler_port)}, tmp_path),
    ]
    try:
        wait_until(lambda: request(web_port, "GET", "/healthz")[0] == 200, what="gunicorn serving", processes=processes)

        # Through gunicorn: 8 failures to re-charge, 4 needing a message, one PSP webhook, one unknown page.
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for i in range(12):
            recharge = i < 8
            body = report(
                failure={"decline_code": "insufficient_funds" if recharge else "expired_card"},
                customer={"id": f"cus_live_{i}", "email": f"live{i}@example.com", "timezone": "UTC"},
                payment_method={"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
            )
            status, answer = request(web_port, "POST", "/api/v1/events/payment_failed", body=json.dumps(body).encode(),
                                  headers=auth)
            assert status == 201, answer
        event = json.dumps({"id": "evt_live_1", "object": "event", "type": "customer.created",
                            "created": int(time.time()), "data": {"object": {"id": "cus_1", "object": "customer"}}}).encode()
        status, answer = request(web_port, "POST", stripe.webhook_path, body=event,
                              headers={"Content-Type": "application/json",
                                       "Stripe-Signature": stripe_signature(event, STRIPE_WEBHOOK_SECRET)})
        assert status == 200, answer
        assert request(web_port, "GET", "/no-such-page/")[0] == 404

        # The re-charges are planned a day ahead: make everything due for the scheduler.
        RecoveryAttempt.objects.filter(organization=org, status=AttemptStatus.SCHEDULED).update(
            scheduled_for=timezone.now()
        )

        def recovered_and_messaged():
            worker = scrape(worker_port)
            return (
                total(worker, "tinko_recovery_attempts_total", kind="auto_retry", outcome="succeeded") == 8
                and total(worker, "tinko_notifications_total", channel="email", outcome="sent") == 4
                and total(worker, "tinko_merchant_webhook_deliveries_total", outcome="retrying") >= 1
                # The PSP webhook was stored by the web and processed (ignored: Tinko does not use its type) by the worker.
                and total(worker, "tinko_inbox_messages_total", provider="stripe", status="ignored") == 1
                and worker
            )

        worker = wait_until(recovered_and_messaged, what="the worker recovering 8 payments and sending 4 e-mails",
                            processes=processes, timeout=90)
        web = scrape(web_port, token=TOKEN)
        web_processes = {path.stem.split("_")[1] for path in (tmp_path / "web").glob("counter_*.db")} - {"archive"}
        scheduler = scrape(scheduler_port)
        unauthorised, _ = request(web_port, "GET", "/metrics")
        probes = {(name, path): request(port, "GET", path) for name, port in (("worker", worker_port), ("scheduler", scheduler_port))
                  for path in ("/healthz", "/readyz")}
    finally:
        for process in processes:
            process.stop()
        receiver.close()

    assert unauthorised == 401
    # The worker's and the scheduler's listeners answer Kubernetes' probes too.
    assert {key: status for key, (status, _) in probes.items()} == {key: 200 for key in probes}
    assert json.loads(probes[("worker", "/readyz")][1])["checks"] == {"database": "ok", "broker": "ok", "cache": "ok"}
    # Web: several gunicorn workers wrote values, and one scrape adds them all up.
    assert len(web_processes) >= 2
    # At exit gunicorn archived each worker's values into one file per type.
    assert sorted(path.name for path in (tmp_path / "web").glob("*.db")) == ["counter_archive.db", "histogram_archive.db"]
    assert total(web, "tinko_failure_events_total", provider="sandbox") == 12
    assert total(web, "tinko_failure_events_total", category="insufficient_funds") == 8
    assert total(web, "tinko_http_requests_total", method="POST", status="201") == 12
    assert total(web, "tinko_http_requests_total", view="unmatched", status="404") == 1
    assert total(worker, "tinko_inbox_messages_total", provider="stripe", status="ignored") == 1
    assert total(web, "tinko_db_query_duration_seconds_count") > 0
    assert total(web, "tinko_cache_operations_total") > 0
    assert "tinko_recovery_due_attempts" in web and "tinko_recovery_oldest_due_attempt_age_seconds" in web
    assert {s.labels["queue"] for s in web["tinko_queue_messages"]} >= {"recovery", "notifications", "email"}
    # Worker: Dramatiq's own metrics and Tinko's, from both worker processes.
    assert total(worker, "tinko_psp_requests_total", provider="sandbox", operation="charge", outcome="ok") == 8
    assert total(worker, "tinko_recovered_value_total", currency="USD") == pytest.approx(8 * 49.99)
    assert total(worker, "tinko_recovered_payments_total", channel="psp") == 8
    assert total(worker, "tinko_recovery_attempts_total", kind="notification", outcome="succeeded") == 4
    assert total(worker, "dramatiq_messages_total", actor_name="run_attempts") >= 1
    # Scheduler: what it claimed, and its ticks.
    assert total(scheduler, "tinko_recovery_attempt_claims_total", reason="due") == 12
    assert total(scheduler, "tinko_scheduler_tick_duration_seconds_count") >= 1

    exported = set(web) | set(worker) | set(scheduler)
    missing = {where: sorted(metric_names(query) - exported) for where, query in shipped_queries().items()}
    assert not {where: names for where, names in missing.items() if names}
