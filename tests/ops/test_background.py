"""Background work: the Redis broker with real workers, and the in-process worker of local mode."""

from __future__ import annotations

import threading

import dramatiq
import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from tinko import background
from tinko.mail import queue_email


def test_suite_runs_jobs_through_the_redis_broker():
    assert isinstance(dramatiq.get_broker(), RedisBroker)


def _queue_size(name: str) -> int:
    broker = dramatiq.get_broker()
    return broker.do_qsize(name)


@pytest.mark.django_db(transaction=True)
def test_queued_email_goes_through_redis_after_commit_and_a_worker_sends_it():
    broker = dramatiq.get_broker()
    broker.flush_all()
    with transaction.atomic():
        email = queue_email(subject="Welcome", body="Hello from Tinko", to=["someone@example.com"])
        assert _queue_size("email") == 0  # nothing is enqueued before the transaction commits
    assert _queue_size("email") == 1
    assert mail.outbox == []  # enqueued, not sent in the request
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join("email", timeout=10_000)
        worker.join()
    finally:
        stopper = threading.Thread(target=worker.stop)
        stopper.start()
        stopper.join()
        broker.middleware[:] = [m for m in broker.middleware if getattr(m, "worker", None) is not worker]
    assert [(m.subject, m.to, m.body) for m in mail.outbox] == [("Welcome", ["someone@example.com"], "Hello from Tinko")]
    email.refresh_from_db()
    assert email.status == "sent"


@pytest.fixture
def stub_broker():
    """A private StubBroker; the configured (Redis) broker of the suite is left alone."""
    broker = StubBroker()
    broker.emit_after("process_boot")
    yield broker
    background.stop_inprocess_worker()
    broker.close()


def test_inprocess_worker_processes_a_message_in_this_process(stub_broker):
    done = threading.Event()
    seen = []

    @dramatiq.actor(broker=stub_broker, queue_name="ops-test")
    def remember(value):
        seen.append((value, threading.current_thread().name))
        done.set()

    worker = background.start_inprocess_worker(broker=stub_broker)
    assert worker is not None
    remember.send("hello")
    assert done.wait(timeout=10)
    assert seen[0][0] == "hello"
    assert seen[0][1] != threading.current_thread().name
    assert len(worker.workers) == settings.TINKO_INPROCESS_WORKER_THREADS


def test_inprocess_worker_starts_once_however_often_and_concurrently_it_is_asked(stub_broker):
    barrier = threading.Barrier(8)
    started = []

    def start():
        barrier.wait()
        started.append(background.start_inprocess_worker(broker=stub_broker))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 8
    assert len({id(worker) for worker in started}) == 1
    assert background.start_inprocess_worker(broker=stub_broker) is started[0]
    assert background.inprocess_worker() is started[0]


def test_stopping_the_inprocess_worker_ends_its_threads(stub_broker):
    worker = background.start_inprocess_worker(broker=stub_broker)
    threads = list(worker.workers) + list(worker.consumers.values())
    background.stop_inprocess_worker()
    assert background.inprocess_worker() is None
    assert not any(thread.is_alive() for thread in threads)


def test_no_inprocess_worker_for_the_redis_broker():
    assert background.start_inprocess_worker() is None
    assert background.inprocess_worker() is None


@pytest.mark.parametrize(
    ("argv", "serving"),
    [
        (["manage.py", "runserver", "127.0.0.1:8000"], True),
        (["/usr/lib/python3/site-packages/django/__main__.py", "runserver"], True),
        (["/app/.venv/bin/gunicorn", "tinko.wsgi"], True),
        (["uvicorn", "tinko.asgi:application"], True),
        (["manage.py", "migrate"], False),
        (["manage.py", "shell"], False),
        (["/app/.venv/bin/django-admin", "rundramatiq"], False),
        (["manage.py"], False),
    ],
)
def test_only_servers_run_the_inprocess_worker(argv, serving):
    assert background.runs_a_server(argv) is serving


def test_the_test_suite_never_autostarts_a_worker():
    assert background.runs_a_server() is False
    assert background.autostart_inprocess_worker() is None


def test_jobs_log_with_the_request_id_of_whoever_enqueued_them():
    from tinko.logging import request_id_var

    broker = StubBroker(middleware=[background.RequestIDPropagation()])
    broker.emit_after("process_boot")
    seen = []
    done = threading.Event()

    @dramatiq.actor(broker=broker, queue_name="ops-request-id")
    def record():
        seen.append(request_id_var.get())
        done.set()

    background.start_inprocess_worker(broker=broker)
    try:
        token = request_id_var.set("req-77")
        try:
            record.send()
        finally:
            request_id_var.reset(token)
        record.send()  # enqueued outside any request
        assert done.wait(timeout=10)
        broker.join("ops-request-id", timeout=10_000)
    finally:
        background.stop_inprocess_worker()
    assert sorted(seen) == ["-", "req-77"]


def test_configured_broker_propagates_request_ids():
    assert any(isinstance(m, background.RequestIDPropagation) for m in dramatiq.get_broker().middleware)
