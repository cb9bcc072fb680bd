"""The scheduler: periodic jobs claimed from the database, enqueued once, stopped cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import dramatiq
import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.utils import timezone

from tests.ops.procs import BASE_DIR, production_env
from tinko import scheduler, tasks
from tinko.models import PeriodicJob


def _queued(queue_name: str) -> int:
    broker = dramatiq.get_broker()
    broker.declare_queue(queue_name)
    return broker.do_qsize(queue_name) if hasattr(broker, "do_qsize") else broker.queues[queue_name].qsize()


def test_session_cleanup_is_registered_as_a_periodic_job():
    assert "clear_expired_sessions" in {job.name for job in scheduler.registered()}


def test_a_due_job_is_enqueued_once_and_then_waits_its_period(db, run_jobs, django_capture_on_commit_callbacks):
    job = scheduler.Periodic("clear_expired_sessions", timedelta(hours=6), tasks.clear_expired_sessions)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduler.run_due_periodic_jobs(now=now, jobs=[job]) == ["clear_expired_sessions"]
        assert scheduler.run_due_periodic_jobs(now=now + timedelta(hours=1), jobs=[job]) == []
    assert _queued("housekeeping") == 1
    assert PeriodicJob.objects.get(name=job.name).next_run_at == now + timedelta(hours=6)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduler.run_due_periodic_jobs(now=now + timedelta(hours=6), jobs=[job]) == ["clear_expired_sessions"]


def test_session_cleanup_job_deletes_only_expired_sessions(db, run_jobs):
    live = SessionStore()
    live["x"] = 1
    live.create()
    expired = SessionStore()
    expired.create()
    Session.objects.filter(session_key=expired.session_key).update(expire_date=timezone.now() - timedelta(days=1))
    tasks.clear_expired_sessions()
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_enqueue_a_due_job_once(run_jobs):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (set DATABASE_URL)")
    sent = []
    fake_actor = type("A", (), {"send": lambda self: sent.append(1), "actor_name": "probe"})()
    job = scheduler.Periodic("probe", timedelta(minutes=5), fake_actor)
    PeriodicJob.objects.create(name="probe", next_run_at=timezone.now() - timedelta(seconds=1))
    barrier = threading.Barrier(4)

    def tick():
        barrier.wait()
        try:
            scheduler.run_due_periodic_jobs(jobs=[job])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sent == [1]


def test_run_scheduler_ticks_and_stops_cleanly_on_sigterm(tmp_path):
    env = production_env(tmp_path, TINKO_SCHEDULER_TICK="1", LOG_FORMAT="text", LOG_LEVEL="INFO")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler"], cwd=BASE_DIR, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        output = ""
        while "Scheduler enqueued" not in output and time.monotonic() < deadline:
            output += proc.stdout.readline()
        assert "Scheduler enqueued" in output, output
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Scheduler stopped" in rest
