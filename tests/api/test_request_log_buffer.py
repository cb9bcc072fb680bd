"""The API request log's buffered writer (production's default): rows written together, what a crash can lose."""

from __future__ import annotations

import json
import time

import pytest
from django.db import DatabaseError

from recovery.models import Payment
from tests.recovery.conftest import Api, report
from tinko.api import request_log
from tinko.models import ApiRequestLog


@pytest.fixture
def api(api_key):
    return Api(api_key[1])


@pytest.fixture
def buffered(settings, monkeypatch):
    """Buffered as in production, with the writer thread kept from starting: the test writes by calling flush()."""
    settings.TINKO_API_LOG_FLUSH_MS = 60_000
    settings.TINKO_API_LOG_FLUSH_ROWS = 3
    buffer = request_log._Buffer()
    monkeypatch.setattr(request_log, "_buffer", buffer)
    monkeypatch.setattr(buffer, "_start_writer", lambda: None)
    return buffer


@pytest.mark.django_db
def test_a_row_waits_in_the_process_until_the_writer_stores_it_as_the_request_would_have(api, api_key, org, buffered):
    response = api.post("events/payment_failed", report(reference="order-1"), **{"Idempotency-Key": "idem-1"})

    assert response.status_code == 201
    # The request's own work is committed; its log line is not written yet.
    assert Payment.objects.filter(reference="order-1").exists()
    assert not ApiRequestLog.objects.exists()
    assert buffered.pending() == 1
    assert request_log.flush() == 1
    log = ApiRequestLog.objects.get()
    assert (log.organization, log.api_key, log.key_name, log.method, log.status) == (org, api_key[0], "Test key", "POST", 201)
    assert (log.path, log.idempotency_key) == ("/api/v1/events/payment_failed", "idem-1")
    assert json.loads(log.request_body)["reference"] == "order-1"
    assert json.loads(log.response_body) == response.json()
    assert buffered.pending() == 0


@pytest.mark.django_db
def test_the_writer_is_woken_when_the_buffer_holds_its_rows(api, buffered):
    for _ in range(2):
        api.get("payments")
    assert not buffered._wake.is_set()
    api.get("payments")  # the third of TINKO_API_LOG_FLUSH_ROWS=3
    assert buffered._wake.is_set()
    assert request_log.flush() == 3
    assert ApiRequestLog.objects.count() == 3


@pytest.mark.django_db
def test_a_database_error_loses_that_batch_of_log_rows_only(api, buffered, monkeypatch, caplog):
    api.post("events/payment_failed", report(reference="order-1"))
    api.post("events/payment_failed", report(reference="order-2"))

    def fail(rows):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(request_log, "_copy", fail)
    assert request_log.flush() == 0
    assert "Could not write 2 API log rows" in caplog.text
    # The reports themselves were committed by their requests.
    assert Payment.objects.filter(reference__in=["order-1", "order-2"]).count() == 2
    assert buffered.pending() == 0


@pytest.mark.django_db
def test_at_most_max_buffered_rows_wait_while_nothing_can_be_written(api, buffered, monkeypatch):
    monkeypatch.setattr(request_log, "MAX_BUFFERED", 2)
    for _ in range(4):
        assert api.get("payments").status_code == 200
    assert buffered.pending() == 2
    assert buffered.dropped == 2


@pytest.mark.django_db
def test_without_flush_interval_each_request_writes_its_own_row(api, settings):
    settings.TINKO_API_LOG_FLUSH_MS = 0
    api.get("payments")
    assert ApiRequestLog.objects.count() == 1
    assert request_log._buffer.pending() == 0


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_stores_rows_on_its_own_connection_within_the_interval(api, settings, default_rules, monkeypatch):
    settings.TINKO_API_LOG_FLUSH_MS = 50
    settings.TINKO_API_LOG_FLUSH_ROWS = 1000
    buffer = request_log._Buffer()
    monkeypatch.setattr(request_log, "_buffer", buffer)
    try:
        assert api.post("events/payment_failed", report(reference="order-1")).status_code == 201
        deadline = time.monotonic() + 5
        while not ApiRequestLog.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ApiRequestLog.objects.get().status == 201
        # A graceful stop (atexit) writes what still waits and ends the thread.
        api.get("payments")
        buffer.stop()
        assert ApiRequestLog.objects.count() == 2
        assert buffer._thread is None
    finally:
        buffer.stop()


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at a real commit
def test_a_row_of_a_deleted_key_is_dropped_alone(api, api_key, buffered):
    api.get("payments")
    api.get("payments")
    row = buffered._rows[0]
    buffered._rows.insert(1, (row[0], 987654321, *row[2:]))  # a key deleted since its request

    assert request_log.flush() == 2
    assert ApiRequestLog.objects.count() == 2
    assert set(ApiRequestLog.objects.values_list("api_key_id", flat=True)) == {api_key[0].pk}
