"""A recording fake Razorpay: a real HTTP server that keeps orders and payments like Razorpay does.

A :class:`tests.payments.psp.FakePSP` (same server, same recorded requests)
whose answers have state, because the properties under test are about state at the PSP: how many
orders an attempt made, how many debits a token got. Payload shapes are the
recorded ones in tests/fixtures/razorpay (order, payment, the error envelope
``{"error": {"code": "BAD_REQUEST_ERROR", "description": …}}`` that Razorpay
sends for 400 and 401 alike).

- ``recurring_status``: what a new recurring payment becomes (``captured``,
  ``created`` for a mandate debit pending at the bank, ``failed``).
- ``fail(method, path, status, body=None, times=1, delay=0, lost=False)``: the
  next ``times`` requests to that route answer ``status`` (after ``delay``
  seconds; a delay beyond TINKO_PSP_TIMEOUT is a timeout); with ``lost`` the
  request is carried out first and only its answer is lost.
- ``order_delay``: seconds POST /v1/orders takes (widens a race on purpose).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from tests.payments.psp import FakePSP, Recorded, load

BAD_KEY = {"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed", "source": "NA",
                     "step": "NA", "reason": "NA", "metadata": {}, "field": "NA"}}
BAD_REQUEST = {"error": {"code": "BAD_REQUEST_ERROR", "description": "The contact field is required.",
                         "source": "business", "step": "payment_initiation", "reason": "input_validation_failed",
                         "metadata": {}, "field": "contact"}}
SERVER_ERROR = {"error": {"code": "SERVER_ERROR", "description": "The server encountered an error.",
                          "source": "NA", "step": "NA", "reason": "NA", "metadata": {}}}


@dataclass
class FakeRazorpay(FakePSP):
    recurring_status: str = "captured"
    order_delay: float = 0.0
    orders: dict = field(default_factory=dict)
    payments: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._seq = 0

    # --- test controls ---------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, body=None, *, times: int = 1, delay: float = 0.0,
             lost: bool = False) -> None:
        """The next ``times`` requests answer ``status``; ``lost``: Razorpay did the work, the answer never came."""
        self.failures[(method.upper(), path)] = [(status, body or {}, delay, lost)] * times

    def settle(self, payment_id: str, status: str = "captured") -> None:
        """The bank answered: a pending debit becomes captured (its order paid) or failed."""
        with self._lock:
            item = self.payments[payment_id]
            item["status"] = status
            if status == "failed":
                item.update(error_code="BAD_REQUEST_ERROR", error_reason="insufficient_funds",
                            error_description="Payment failed due to insufficient balance in the account.")
            elif status == "captured":
                order = self.orders[item["order_id"]]
                order.update(status="paid", amount_paid=item["amount"], amount_due=0)

    def debits(self) -> list[dict]:
        return list(self.payments.values())

    # --- the API ---------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_Fake{self._seq:010d}"

    def answer(self, request: Recorded) -> tuple[int, dict]:
        queued = self.failures.get((request.method, request.path))
        if queued:
            status, body, delay, lost = queued.pop(0)
            if lost:
                self.handle(request.method, request.path, request.query, json.loads(request.body or "{}"))
            time.sleep(delay)
            return status, body
        return self.handle(request.method, request.path, request.query, json.loads(request.body or "{}"))

    def handle(self, method: str, path: str, query: dict, body: dict):
        if method == "GET" and path == "/v1/orders":
            receipt = (query.get("receipt") or [""])[0]
            items = [o for o in self.orders.values() if not receipt or o["receipt"] == receipt]
            return 200, {"entity": "collection", "count": len(items), "items": items}
        if method == "POST" and path == "/v1/orders":
            time.sleep(self.order_delay)
            with self._lock:
                order = load("razorpay", "order.fetched_paid")
                order.update(id=self._id("order"), amount=body["amount"], amount_paid=0, amount_due=body["amount"],
                             currency=body["currency"], receipt=body["receipt"], status="created",
                             notes=body.get("notes") or {}, attempts=0)
                self.orders[order["id"]] = order
            return 200, order
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:2] == ["v1", "orders"] and len(parts) >= 3:
            order = self.orders.get(parts[2])
            if order is None:
                return 400, {"error": {"code": "BAD_REQUEST_ERROR", "description": "The id provided does not exist"}}
            if parts[3:] == ["payments"]:
                items = [p for p in self.payments.values() if p["order_id"] == order["id"]]
                return 200, {"entity": "collection", "count": len(items), "items": items}
            return 200, order
        if method == "POST" and path == "/v1/payments/create/recurring":
            with self._lock:
                order = self.orders.get(body.get("order_id"))
                if order is None or order["status"] == "paid":
                    return 400, {"error": {"code": "BAD_REQUEST_ERROR", "description": "Order already paid"}}
                item = load("razorpay", "payment.fetched_captured")
                item.update(id=self._id("pay"), order_id=order["id"], amount=body["amount"], currency=body["currency"],
                            status="created", method="emandate" if self.recurring_status != "captured" else "card",
                            email=body.get("email", ""), contact=body.get("contact", ""), token_id=body.get("token"),
                            customer_id=body.get("customer_id"), notes=body.get("notes") or {}, recurring=True,
                            error_code=None, error_reason=None, error_description=None, created_at=int(time.time()))
                self.payments[item["id"]] = item
                order["attempts"] += 1
            if self.recurring_status != "created":
                self.settle(item["id"], self.recurring_status)
            if self.recurring_status == "failed":
                # Razorpay answers a recurring payment that failed at once with a 400 naming the payment.
                return 400, {"error": {"code": "BAD_REQUEST_ERROR", "description": "Payment failed",
                                       "reason": "insufficient_funds", "metadata": {"payment_id": item["id"],
                                                                                   "order_id": order["id"]}}}
            return 200, {"razorpay_payment_id": item["id"], "razorpay_order_id": order["id"],
                         "razorpay_signature": "0" * 64}
        if method == "GET" and parts[:2] == ["v1", "payments"] and len(parts) == 3 and parts[2] in self.payments:
            return 200, self.payments[parts[2]]
        return 404, {"error": {"code": "BAD_REQUEST_ERROR", "description": f"No route {path}"}}
