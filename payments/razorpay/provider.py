"""Razorpay, through the merchant's own connected account (a ProviderAccount).

The only module that imports the ``razorpay`` SDK. It speaks to the API at
``settings.TINKO_RAZORPAY_API_BASE`` with the account's key id and secret and
answers with the provider-neutral dataclasses.

Idempotency: Razorpay's payments API takes no idempotency key, so a re-charge
is tied to an Order whose ``receipt`` is derived from the attempt's key. A
re-run finds that order again (``GET /v1/orders?receipt=…``) and reads its
payments instead of charging again; a paid order is never charged twice
(Razorpay refuses a second payment on it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from datetime import datetime, timedelta, timezone as dt_timezone

import razorpay
import requests
from django.conf import settings
from django.db import DatabaseError, OperationalError, transaction
from django.utils import timezone

from payments.events import EventOutcome, SuccessFacts
from payments.models import DebitStatus
from payments.providers import (
    ChargeResult,
    CheckoutResult,
    CheckoutSession,
    PaymentProvider,
    PaymentState,
    ProviderUnavailable,
    WebhookEvent,
    WebhookRejected,
    register_provider,
)
from recovery.reports import ReportInvalid, parse_customer, parse_report
from tinko import textsafety

logger = logging.getLogger(__name__)

HANDLED_EVENTS = ("payment.failed", "payment.captured", "order.paid", "payment_link.paid")


class _Session(requests.Session):
    """requests with a timeout on every call (the SDK sets none), remembering the last HTTP status.

    The SDK turns a 401 (bad key), a 400 and a 5xx alike into BadRequestError or
    ServerError; the status tells Tinko which one it was.
    """

    last_status: int | None = None

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", settings.TINKO_PSP_TIMEOUT)
        self.last_status = None
        response = super().request(*args, **kwargs)
        self.last_status = response.status_code
        return response


def _describe(exc: Exception, status: int | None) -> str:
    """One line for the attempt's log: Razorpay's status and description, or what failed on the way."""
    if isinstance(exc, requests.Timeout):
        return f"Razorpay did not answer within {settings.TINKO_PSP_TIMEOUT} s"
    if isinstance(exc, requests.ConnectionError):
        return "Razorpay could not be reached"
    if status is not None and status >= 400:
        what = "Razorpay refused the key id and secret" if status == 401 else f"Razorpay answered HTTP {status}"
        return f"{what}: {exc}" if str(exc) else what
    return f"{type(exc).__name__}: {exc}"


def _when(ts) -> datetime:
    try:
        return datetime.fromtimestamp(int(ts), tz=dt_timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return timezone.now()


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _entity(payload: dict, name: str) -> dict:
    value = ((payload.get("payload") or {}).get(name) or {}).get("entity")
    return value if isinstance(value, dict) else {}


def receipt_for(idempotency_key: str) -> str:
    """The Order receipt that stands for an attempt's idempotency key (Razorpay allows 40 characters)."""
    return "tk_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def sign(message: str, secret: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@register_provider
class RazorpayProvider(PaymentProvider):
    """A connected Razorpay account."""

    name = "razorpay"
    label = "Razorpay"

    def __init__(self, account=None):
        self.account = account

    def client(self) -> razorpay.Client:
        if self.account is None:
            raise ProviderUnavailable("No Razorpay account is connected.")
        return razorpay.Client(
            session=_Session(), auth=(self.account.key_id, self.account.secret("key_secret")),
            base_url=settings.TINKO_RAZORPAY_API_BASE,
        )

    def test_connection(self) -> tuple[bool, str]:
        """List one order (read only). (ok, plain-language detail)."""
        try:
            self.client().order.all({"count": 1})
        except razorpay.errors.BadRequestError as exc:
            return False, f"Razorpay refused the key id and secret ({exc})."
        except (razorpay.errors.ServerError, razorpay.errors.GatewayError) as exc:
            return False, f"Razorpay answered with an error ({exc})."
        except Exception as exc:
            return False, f"Razorpay could not be reached ({type(exc).__name__})."
        return True, f"Connected to Razorpay ({self.account.mode} mode)."

    def cannot_recharge(self, payment) -> str:
        if not payment.provider_customer_id or not payment.provider_payment_method_id.startswith("token_"):
            return "Razorpay has no saved token of this customer for a recurring payment"
        customer = payment.customer
        missing = [what for what, value in (("e-mail address", customer.email if customer else ""),
                                            ("phone number", customer.phone if customer else "")) if not value]
        if missing:
            # Razorpay's recurring payment needs both; an empty one is refused (HTTP 400).
            return f"Razorpay needs the customer's {' and '.join(missing)} for a recurring debit, and Tinko has none"
        return ""

    # --- off-session re-charge ------------------------------------------------------

    def charge_off_session(self, *, payment, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        """A recurring payment on the customer's saved token, on an Order tied to the idempotency key. MOVES MONEY.

        Exactly one Order per key, even for overlapping runs: the key's
        :class:`RazorpayOrderClaim` is locked (``NOWAIT``) for the whole talk with
        Razorpay, and the run that cannot lock it charges nothing. Only a
        ``captured`` payment counts as paid; a debit still ``created`` or
        ``authorized`` at the bank is ``pending`` and is never debited again.
        Razorpay's own errors (a refused key, a bad request, 5xx, a timeout) are
        ``error``, never a decline, unless the order shows a failed payment.
        """
        from payments.models import RazorpayOrderClaim

        receipt = receipt_for(idempotency_key)
        RazorpayOrderClaim.objects.bulk_create([RazorpayOrderClaim(
            organization_id=payment.organization_id, account=self.account, payment_id=payment.pk, receipt=receipt,
        )], ignore_conflicts=True)
        try:
            with transaction.atomic():
                try:
                    with transaction.atomic():  # a savepoint: a refused lock leaves the transaction usable
                        claim = RazorpayOrderClaim.objects.select_for_update(nowait=True).get(receipt=receipt)
                except OperationalError:
                    return ChargeResult(
                        status=ChargeResult.ERROR, code="in_progress",
                        message="Another run of this attempt is talking to Razorpay; it charges nothing here.",
                    )
                if claim.payment_id != payment.pk:
                    return ChargeResult(status=ChargeResult.ERROR, code="idempotency_error",
                                        message="This attempt's order at Razorpay belongs to another payment.")
                return self._charge_claimed(claim, payment=payment, amount=amount, currency=currency.upper(),
                                            idempotency_key=idempotency_key)
        except DatabaseError as exc:
            # Before or after Razorpay: the outcome is unknown, the next run finds the order by its receipt.
            return ChargeResult(status=ChargeResult.ERROR, code="api_connection_error",
                                message=f"Tinko's database failed around the Razorpay call ({type(exc).__name__}).")

    def _charge_claimed(self, claim, *, payment, amount, currency, idempotency_key) -> ChargeResult:
        client = self.client()
        order, created = None, False
        try:
            if claim.order_id:
                order = client.order.fetch(claim.order_id)
            else:
                found = client.order.all({"receipt": claim.receipt}).get("items") or []
                if found:
                    order = found[0]
                else:
                    earlier = self._earlier_pending_debit(client, claim)
                    if earlier is not None:
                        return earlier
                    created = True
                    order = client.order.create({
                        "amount": amount, "currency": currency, "receipt": claim.receipt, "payment_capture": 1,
                        "notes": {"tinko_payment_id": str(payment.pk), "tinko_reference": payment.reference[:200],
                                  "tinko_attempt": idempotency_key},
                    })
                self._save_claim(claim, order_id=order["id"])
            if order.get("amount") != amount or (order.get("currency") or "").upper() != currency:
                return ChargeResult(
                    status=ChargeResult.ERROR, code="idempotency_error",
                    message="This attempt's order at Razorpay is for a different amount or currency.",
                )
            # An order made just now has no payments; an earlier one's answer is the answer.
            earlier = None if created else self._order_outcome(client, order, claim)
            if earlier is not None:
                return earlier
            customer = payment.customer
            request = {
                "amount": amount, "currency": currency, "order_id": order["id"],
                "customer_id": payment.provider_customer_id, "token": payment.provider_payment_method_id,
                "recurring": "1",
                # The payment's own events (payment.captured, payment.failed) carry only its notes.
                "notes": {"tinko_payment_id": str(payment.pk), "tinko_reference": payment.reference[:200],
                          "tinko_attempt": idempotency_key},
            }
            # Only what Tinko knows: cannot_recharge() keeps a customer without them from getting here.
            request.update({k: v for k, v in (("email", customer.email if customer else ""),
                                              ("contact", customer.phone if customer else "")) if v})
            client.payment.createRecurring(request)
            outcome = self._order_outcome(client, order, claim)
        except Exception as exc:
            return self._provider_error(client, exc, order, claim)
        return outcome or self._pending(claim, "Razorpay took the recurring debit and has not settled it yet.")

    def _provider_error(self, client, exc, order, claim) -> ChargeResult:
        """Razorpay did not answer the charge as a payment: what the order says, else an error that keeps the budget."""
        status = getattr(client.session, "last_status", None)
        if order is not None and status != 401:
            try:
                # A payment that failed at the bank comes back as a 400 too: the order tells it apart.
                outcome = self._order_outcome(client, order, claim)
            except Exception:
                outcome = None
            if outcome is not None:
                return outcome
        if claim.debit_status == DebitStatus.PENDING:
            return self._pending(claim, f"Razorpay could not be asked about the pending debit ({_describe(exc, status)}).")
        code = "api_connection_error"
        if status == 401:
            code = ChargeResult.AUTHENTICATION_ERROR
        elif status is not None and 400 <= status < 500:
            code = "invalid_request_error"
        elif status is not None:
            code = "api_error"
        return ChargeResult(status=ChargeResult.ERROR, code=code,
                            message=f"provider rejected the request: {_describe(exc, status)}"[:300])

    def _earlier_pending_debit(self, client, claim) -> ChargeResult | None:
        """Before a new debit: an earlier attempt's debit of this payment that is pending or unknown is asked about first.

        Its capture pays the payment (that charge is the answer: never a second
        one for the same debt, even when the earlier attempt's answers were all
        lost); while it is pending no new debit is made (Razorpay: "Do not
        create another subsequent payment until you get the status of the
        previous one").
        """
        from payments.models import RazorpayOrderClaim

        unsettled = (RazorpayOrderClaim.objects.filter(payment_id=claim.payment_id)
                     .filter(debit_status__in=[DebitStatus.NONE, DebitStatus.PENDING]).exclude(pk=claim.pk))
        for earlier in unsettled.order_by("pk"):
            order = self._order_of(client, earlier)
            if order is None:
                continue  # no order was ever made for it: nothing was charged
            outcome = self._order_outcome(client, order, earlier)
            # Captured pays the payment; still at the bank (even past the window) blocks a new debit.
            if outcome is not None and (outcome.succeeded or earlier.debit_status == DebitStatus.PENDING):
                return outcome
        return None

    @staticmethod
    def _order_of(client, claim) -> dict | None:
        """The claim's order at Razorpay (by id, else by receipt); None when none was made. Read only."""
        if claim.order_id:
            return client.order.fetch(claim.order_id)
        found = client.order.all({"receipt": claim.receipt}).get("items") or []
        return found[0] if found else None

    def _order_outcome(self, client, order, claim) -> ChargeResult | None:
        payments = client.order.payments(order["id"]).get("items") or []
        for item in payments:
            # Only captured money is paid: an authorized payment may still be refunded unclaimed.
            if item.get("status") == "captured":
                self._save_claim(claim, debit_id=item["id"], debit_status=DebitStatus.CAPTURED,
                                 debit_created_at=_when(item.get("created_at")))
                return ChargeResult(
                    status=ChargeResult.SUCCEEDED, charge_id=item["id"], amount=item.get("amount") or 0,
                    currency=(item.get("currency") or "").upper(), raw=item,
                )
        waiting = [item for item in payments if item.get("status") in ("created", "authorized", "pending")]
        if waiting:
            item = waiting[-1]
            self._save_claim(claim, debit_id=item["id"], debit_status=DebitStatus.PENDING,
                             debit_created_at=_when(item.get("created_at")))
            return self._pending(claim, f"Razorpay debit {item['id']} is {item.get('status')} at the bank.")
        failed = [item for item in payments if item.get("status") == "failed"]
        if failed:
            item = failed[-1]
            self._save_claim(claim, debit_id=item["id"], debit_status=DebitStatus.FAILED,
                             debit_created_at=_when(item.get("created_at")))
            return ChargeResult(
                status=ChargeResult.DECLINED, charge_id=item["id"], code=item.get("error_code") or "",
                decline_code=item.get("error_reason") or "", message=(item.get("error_description") or "")[:300],
                raw=item,
            )
        return None

    def _pending(self, claim, detail: str) -> ChargeResult:
        """A debit waiting at the bank: polled until Razorpay's settlement window has passed, then a person looks.

        Mandate debits settle late: Razorpay documents that a UPI AutoPay debit
        may take 24-36 hours to show ("Do not create another subsequent payment
        until you get the status of the previous one",
        https://razorpay.com/docs/payments/payment-gateway/s2s-integration/recurring-payments/upi-intent/execute-subsequent-payments/),
        and e-mandate/NACH confirmations "may be delayed up to 5 days" by banks and
        holidays (https://razorpay.com/docs/payments/recurring-payments/emandate/faqs/).
        TINKO_RAZORPAY_DEBIT_SETTLEMENT_DAYS (7 calendar days by default) covers both.
        """
        since = claim.debit_created_at or claim.created_at
        window = timedelta(days=settings.TINKO_RAZORPAY_DEBIT_SETTLEMENT_DAYS)
        if timezone.now() - since > window:
            # Not a decline Tinko may retry: an unknown code stops the recovery for a person to look.
            return ChargeResult(
                status=ChargeResult.DECLINED, charge_id=claim.debit_id, code="debit_unsettled",
                message=(f"Razorpay has not settled debit {claim.debit_id or '(unknown)'} within "
                         f"{settings.TINKO_RAZORPAY_DEBIT_SETTLEMENT_DAYS} days; check it in the Razorpay Dashboard."),
            )
        return ChargeResult(status=ChargeResult.PENDING, charge_id=claim.debit_id, code="debit_pending", message=detail)

    @staticmethod
    def _save_claim(claim, **fields) -> None:
        changed = {k: v for k, v in fields.items() if getattr(claim, k) != v}
        if changed:
            for name, value in changed.items():
                setattr(claim, name, value)
            claim.updated_at = timezone.now()
            claim.save(update_fields=[*changed, "updated_at"])

    # --- reading state ------------------------------------------------------------------

    def fetch_payment_state(self, *, payment) -> PaymentState:
        """Whether Razorpay has the payment's order paid, its payment captured, or a re-charge of Tinko's captured. Read only.

        Tinko's own orders are asked about too: a re-charge whose answers were
        all lost ends ``recovered`` once Razorpay can be asked again.
        """
        from payments.models import RazorpayOrderClaim

        client = self.client()
        unsettled = RazorpayOrderClaim.objects.filter(
            payment_id=payment.pk, debit_status__in=[DebitStatus.NONE, DebitStatus.PENDING]
        ).order_by("pk")
        for claim in unsettled:
            order = self._order_of(client, claim)
            captured = [p for p in (client.order.payments(order["id"]).get("items") or [])
                        if p.get("status") == "captured"] if order else []
            if captured:
                return PaymentState(
                    paid=True, amount_paid=captured[0].get("amount") or 0,
                    currency=(captured[0].get("currency") or "").upper(), charge_id=captured[0]["id"],
                    detail=f"Tinko's re-charge (Razorpay order {order['id']}, payment {captured[0]['id']}) was captured.",
                    attempt_key=(order.get("notes") or {}).get("tinko_attempt") or "",
                )
        for object_id in (payment.reference, payment.provider_payment_id):
            if object_id.startswith("order_"):
                order = client.order.fetch(object_id)
                if order.get("status") == "paid":
                    return PaymentState(
                        paid=True, amount_paid=order.get("amount_paid") or 0, currency=(order.get("currency") or "").upper(),
                        charge_id=order["id"], detail=f"Razorpay order {object_id} is paid.",
                    )
                return PaymentState(paid=False, detail=f"Razorpay order {object_id} is {order.get('status')}.")
            if object_id.startswith("pay_"):
                item = client.payment.fetch(object_id)
                if item.get("status") == "captured":
                    return PaymentState(
                        paid=True, amount_paid=item.get("amount") or 0, currency=(item.get("currency") or "").upper(),
                        charge_id=item["id"], detail=f"Razorpay payment {object_id} is captured.",
                    )
                return PaymentState(paid=False, detail=f"Razorpay payment {object_id} is {item.get('status')}.")
        return PaymentState(paid=False, detail="Tinko knows no Razorpay order or payment for this payment.")

    # --- hosted checkout: a Payment Link --------------------------------------------------

    def create_checkout(self, *, payment, link, token: str, success_url: str, cancel_url: str, locale: str = "") -> CheckoutSession:
        """A Razorpay Payment Link for the payment's amount; the customer returns to ``success_url`` with a signed callback."""
        customer = payment.customer
        data = {
            "amount": payment.amount,
            "currency": payment.currency,
            "accept_partial": False,
            # Unique per account at Razorpay: a second visit makes a new link.
            "reference_id": f"tinko-{link.pk}-{secrets.token_hex(4)}",
            "description": (payment.description or f"Payment {payment.reference}")[:2048],
            "notify": {"sms": False, "email": False},
            "reminder_enable": False,
            "callback_url": success_url,
            "callback_method": "get",
            "expire_by": int(link.expires_at.timestamp()),
            "notes": {"tinko_link_id": str(link.pk), "tinko_payment_id": str(payment.pk),
                      "tinko_reference": payment.reference[:200]},
        }
        if customer is not None:
            data["customer"] = {k: v for k, v in {"name": customer.name, "email": customer.email,
                                                   "contact": customer.phone}.items() if v}
        try:
            created = self.client().payment_link.create(data)
        except Exception as exc:
            logger.warning("Razorpay refused a payment link for payment %s: %s", payment.pk, type(exc).__name__)
            raise ProviderUnavailable("Razorpay could not start the payment page; please try again in a moment.") from None
        return CheckoutSession(url=created["short_url"], reference=created["id"])

    def confirm_checkout(self, *, payment, link, params) -> CheckoutResult:
        """Verify the callback's signature with the key secret, then re-fetch the Payment Link from Razorpay."""
        fields = {name: params.get(f"razorpay_{name}") or "" for name in (
            "payment_id", "payment_link_id", "payment_link_reference_id", "payment_link_status", "signature")}
        if not fields["payment_link_id"] or not fields["signature"]:
            return CheckoutResult(status=CheckoutResult.FAILED, detail="No Razorpay payment to confirm.")
        message = "|".join(fields[n] for n in ("payment_link_id", "payment_link_reference_id", "payment_link_status", "payment_id"))
        if not hmac.compare_digest(sign(message, self.account.secret("key_secret")), fields["signature"]):
            return CheckoutResult(status=CheckoutResult.FAILED, detail="The Razorpay callback's signature does not verify.")
        try:
            plink = self.client().payment_link.fetch(fields["payment_link_id"])
        except Exception:
            return CheckoutResult(status=CheckoutResult.PENDING, detail="Razorpay could not be reached; still confirming.")
        if (plink.get("notes") or {}).get("tinko_link_id") != str(link.pk):
            return CheckoutResult(status=CheckoutResult.FAILED, detail="That payment link belongs to another payment.")
        if plink.get("status") == "paid":
            paid = [p for p in plink.get("payments") or [] if p.get("status") == "captured"]
            return CheckoutResult(
                status=CheckoutResult.PAID, charge_id=(paid[0].get("payment_id") if paid else "") or fields["payment_id"],
                amount=plink.get("amount_paid") or 0, currency=(plink.get("currency") or "").upper(),
                detail="Razorpay confirmed the payment.",
            )
        if plink.get("status") in ("created", "partially_paid"):
            return CheckoutResult(status=CheckoutResult.PENDING, detail="Razorpay has not confirmed the payment yet.")
        return CheckoutResult(status=CheckoutResult.FAILED, detail=f"The payment link is {plink.get('status')}.")

    # --- webhooks ---------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers, *, tolerance: int | None = None) -> WebhookEvent:
        """Verify ``X-Razorpay-Signature`` (HMAC-SHA256 of the raw body with the webhook secret)."""
        signature = headers.get("X-Razorpay-Signature", "")
        if not signature:
            raise WebhookRejected("The X-Razorpay-Signature header is missing.")
        expected = hmac.new(self.account.secret("webhook_secret").encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise WebhookRejected("The Razorpay signature does not verify.")
        event_id = headers.get("X-Razorpay-Event-Id", "")
        if not event_id:
            raise WebhookRejected("The X-Razorpay-Event-Id header is missing.")
        try:
            payload = textsafety.loads(body)
        except textsafety.JSONProblem as exc:
            raise WebhookRejected(f"The body is not JSON Tinko can take: {exc}.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), str) or not isinstance(payload.get("payload"), dict):
            raise WebhookRejected("The body is not a Razorpay event (event and payload are required).")
        return WebhookEvent(id=event_id, type=payload["event"], payload=payload, created=payload.get("created_at") or 0)

    def webhook_ordering_key(self, event: WebhookEvent) -> str:
        """The customer, else the order, else the entity the event is about: a payment's and its order's events stay in order."""
        for name in ("payment", "order", "payment_link", "subscription", "token"):
            entity = _entity(event.payload, name)
            for field_name in ("customer_id", "order_id", "id"):
                key = entity.get(field_name)
                if key and isinstance(key, str):
                    return key[:255]
        return ""

    def interpret_event(self, event: WebhookEvent) -> EventOutcome | None:
        """What ``event`` means for Tinko; None for an event type Tinko does not use. Successes are re-fetched."""
        payload = event.payload
        if event.type == "payment.failed":
            return self._failure(event, _entity(payload, "payment"))
        if event.type == "payment.captured":
            item = self.client().payment.fetch(_entity(payload, "payment")["id"])
            if item.get("status") != "captured":
                return EventOutcome(note=f"Razorpay says payment {item.get('id')} is {item.get('status')}, not captured.")
            return self._success(item, order_id=item.get("order_id") or "")
        if event.type == "order.paid":
            order = self.client().order.fetch(_entity(payload, "order")["id"])
            if order.get("status") != "paid":
                return EventOutcome(note=f"Razorpay says order {order.get('id')} is {order.get('status')}, not paid.")
            item = _entity(payload, "payment")
            return self._success(item, order_id=order["id"], amount=order.get("amount_paid"), notes=order.get("notes"))
        if event.type == "payment_link.paid":
            plink = self.client().payment_link.fetch(_entity(payload, "payment_link")["id"])
            if plink.get("status") != "paid":
                return EventOutcome(note=f"Razorpay says payment link {plink.get('id')} is {plink.get('status')}, not paid.")
            item = _entity(payload, "payment")
            return self._success(
                item, order_id=plink.get("order_id") or item.get("order_id") or "", amount=plink.get("amount_paid"),
                notes=plink.get("notes"), extra=(plink["id"],), currency=plink.get("currency"),
            )
        return None

    def _success(self, item, *, order_id="", amount=None, notes=None, extra=(), currency=None) -> EventOutcome:
        notes = {**(item.get("notes") or {}), **(notes or {})} if isinstance(item.get("notes"), dict) else (notes or {})
        references = tuple(r for r in (notes.get("tinko_reference"), order_id, item.get("id"), *extra) if r)
        return EventOutcome(successes=[SuccessFacts(
            references=references,
            # Keyed by the order when there is one: its payment.captured and order.paid name the same money.
            charge_id=order_id or item.get("id") or extra[0],
            amount=amount or item.get("amount") or 0,
            currency=(currency or item.get("currency") or "").upper(),
            occurred_at=_when(item.get("created_at")),
            link_id=_int(notes.get("tinko_link_id")),
            attempt_key=notes.get("tinko_attempt") or "",
            payment_id=_int(notes.get("tinko_payment_id")),
        )])

    def _failure(self, event, item: dict) -> EventOutcome:
        notes = item.get("notes") if isinstance(item.get("notes"), dict) else {}
        if notes.get("tinko_attempt"):
            return EventOutcome(note="A decline of Tinko's own re-charge; the attempt recorded it.",
                                own_attempt=notes["tinko_attempt"])
        if notes.get("tinko_link_id"):
            return EventOutcome(note="A failed try on the pay page; the customer may try again there.")
        card = item.get("card") or {}
        failure = {
            "code": item.get("error_code") or "",
            "decline_code": item.get("error_reason") or "",
            "message": (item.get("error_description") or "")[:1000],
        }
        if not any(failure.values()):
            failure["message"] = "Razorpay reported the payment as failed without giving a reason."
        from tinko import phones

        contact = phones.normalize(item.get("contact") or "")
        customer = {"email": item.get("email") or "", "id": item.get("customer_id") or ""}
        if contact:
            customer["phone"] = contact
        fetched = False
        if customer["id"] and not (customer["email"] or customer.get("phone")):
            found, fetched = self.contact_once(customer["id"])
            customer.update({k: v for k, v in found.items() if v})
        data = {
            "event_id": item.get("id") or event.id,
            "reference": notes.get("tinko_reference") or item.get("order_id") or item.get("id"),
            "amount": item.get("amount"),
            "currency": (item.get("currency") or "").upper(),
            "provider": "razorpay",
            "provider_payment_id": item.get("id") or "",
            "occurred_at": _when(item.get("created_at") or event.created).isoformat(),
            "description": (item.get("description") or "")[:500],
            "failure": {k: v for k, v in failure.items() if v},
            "customer": {k: v for k, v in customer.items() if v} or None,
            "payment_method": {k: v for k, v in {
                "brand": (card.get("network") or "").lower().replace(" ", "_")[:20], "last4": card.get("last4") or "",
            }.items() if v} or None,
        }
        data = {k: v for k, v in data.items() if v not in (None, "")}
        try:
            report = parse_report(data)
        except ReportInvalid as exc:
            raise ValueError(f"The Razorpay event does not describe a usable failure: {json.dumps(exc.errors)}") from None
        report.raw = item
        report.provider_customer_id = item.get("customer_id") or ""
        report.provider_payment_method_id = item.get("token_id") or ""
        report.customer_fetched = fetched
        return EventOutcome(failures=[report])

    def fetch_customer_contact(self, customer_id: str) -> dict:
        """The Razorpay customer's e-mail, phone and name (``GET /v1/customers/{id}``). Read only."""
        from tinko import phones

        found = self.client().customer.fetch(customer_id)
        checked = parse_customer({"email": found.get("email") or "", "name": (found.get("name") or "")[:200],
                                  "phone": phones.normalize(found.get("contact") or "")})
        return {k: v for k, v in checked.items() if v}
