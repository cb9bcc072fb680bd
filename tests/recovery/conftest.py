"""Helpers for the recovery engine's tests: an API client for ``org`` and failure reports."""

from __future__ import annotations

import copy
import json
import threading
import uuid

import pytest
from django.db import connection
from django.test import Client

from tinko import services


def report(**overrides) -> dict:
    """A valid failure report; ``overrides`` replace top-level fields (None removes one)."""
    data = {
        "event_id": f"evt_{uuid.uuid4().hex[:12]}",
        "reference": f"order-{uuid.uuid4().hex[:8]}",
        "amount": 4999,
        "currency": "USD",
        "provider": "sandbox",
        "failure": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Insufficient funds."},
        "customer": {"id": "cus_1", "email": "ada@example.com", "name": "Ada Lovelace", "timezone": "UTC"},
        "payment_method": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030, "fingerprint": "fp_ada"},
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = copy.deepcopy(value)
    return data


class Api:
    def __init__(self, key: str):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {key}"}

    def post(self, path, data=None, *, raw: bytes | str | None = None, **headers):
        body = raw if raw is not None else json.dumps(data if data is not None else {})
        return self.client.post(f"/api/v1/{path}", body, content_type="application/json", headers={**self.headers, **headers})

    def get(self, path, params=None):
        return self.client.get(f"/api/v1/{path}", params or {}, headers=self.headers)

    def patch(self, path, data):
        return self.client.patch(f"/api/v1/{path}", json.dumps(data), content_type="application/json", headers=self.headers)

    def delete(self, path):
        return self.client.delete(f"/api/v1/{path}", headers=self.headers)


@pytest.fixture
def api(api_key):
    return Api(api_key[1])


@pytest.fixture
def other_api(other_org, outsider):
    _, key = services.create_api_key(organization=other_org, name="Globex key", created_by=outsider)
    return Api(key)


def concurrently(n, fn) -> list:
    """Run ``fn`` in ``n`` threads released together (each on its own connection); their results in any order."""
    barrier = threading.Barrier(n)
    results = []
    lock = threading.Lock()

    def run():
        try:
            barrier.wait()
            outcome = fn()
            with lock:
                results.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
