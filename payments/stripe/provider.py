"""Stripe, through the merchant's own connected account (a ProviderAccount).

The only module that imports the ``stripe`` SDK. It speaks to the API at
``settings.TINKO_STRIPE_API_BASE`` (Stripe itself unless a mock such as
localstripe is configured) with the account's secret key, and answers with the
provider-neutral dataclasses of payments/providers.py and payments/events.py.

Money is decided from Stripe, never from a webhook's body: successes are
re-fetched (PaymentIntent, Invoice, Checkout Session) before they end a
recovery. Failures are read from the signed body (they move no money), as is
the card updater's news.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone as dt_timezone

import stripe
from django.conf import settings
from django.utils import timezone

from payments.events import CardUpdate, EventOutcome, SuccessFacts
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
from recovery.reports import FailureReport, ReportInvalid, parse_report
from tinko import textsafety

logger = logging.getLogger(__name__)

TOLERANCE = 300  # seconds: Stripe's own default for the signature's timestamp

HANDLED_EVENTS = (
    "payment_intent.payment_failed",
    "charge.failed",
    "invoice.payment_failed",
    "payment_intent.succeeded",
    "invoice.paid",
    "checkout.session.completed",
    "payment_method.automatically_updated",
)


def _get(obj, *path, default=None):
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def _id(value) -> str:
    """An expandable field: the id whether Stripe sent the id or the object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def _when(ts) -> datetime:
    try:
        return datetime.fromtimestamp(int(ts), tz=dt_timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return timezone.now()


def _as_dict(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj or {})


def _append_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


@register_provider
class StripeProvider(PaymentProvider):
    """A connected Stripe account. Instances hold the account; they keep no per-request state."""

    name = "stripe"
    label = "Stripe"

    def __init__(self, account=None):
        self.account = account

    # --- plumbing ---------------------------------------------------------------

    def client(self) -> stripe.StripeClient:
        if self.account is None:
            raise ProviderUnavailable("No Stripe account is connected.")
        return stripe.StripeClient(
            self.account.secret("secret_key"),
            base_addresses={"api": settings.TINKO_STRIPE_API_BASE},
            # One retry on a dropped connection, with the same idempotency key.
            max_network_retries=1,
            http_client=stripe.RequestsClient(timeout=settings.TINKO_PSP_TIMEOUT),
        )

    def test_connection(self) -> tuple[bool, str]:
        """Ask Stripe for the account's balance (read only). (ok, plain-language detail)."""
        try:
            balance = self.client().v1.balance.retrieve()
        except stripe.AuthenticationError:
            return False, "Stripe refused the secret key (check that it is the account's current secret key)."
        except stripe.StripeError as exc:
            return False, f"Stripe answered with an error: {exc.user_message or type(exc).__name__}."
        except Exception as exc:  # network trouble
            return False, f"Stripe could not be reached ({type(exc).__name__})."
        mode = "live" if _get(_as_dict(balance), "livemode") else "test"
        return True, f"Connected to Stripe ({mode} mode)."

    def cannot_recharge(self, payment) -> str:
        if not payment.provider_customer_id or not payment.provider_payment_method_id:
            return "Stripe has no saved card of this customer that Tinko can charge off-session"
        return ""

    # --- off-session re-charge -----------------------------------------------------

    def charge_off_session(self, *, payment, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        """A PaymentIntent confirmed off-session with the saved card. MOVES MONEY, once per idempotency key.

        Declines come back with Stripe's ``code``, ``decline_code``, ``advice_code``
        and network codes; ``authentication_required`` (or a PaymentIntent that
        needs action) sets ``requires_action``. An unreachable Stripe is
        ``status="error"`` (retry with the same key).
        """
        params = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": payment.provider_customer_id,
            "payment_method": payment.provider_payment_method_id,
            "off_session": True,
            "confirm": True,
            "metadata": {
                "tinko_payment_id": str(payment.pk),
                "tinko_reference": payment.reference,
                "tinko_attempt": idempotency_key,
            },
        }
        try:
            intent = _as_dict(self.client().v1.payment_intents.create(params, {"idempotency_key": idempotency_key}))
        except stripe.CardError as exc:
            return self._decline(_get(exc.json_body or {}, "error", default={}), exc.user_message or "")
        except stripe.IdempotencyError as exc:
            return ChargeResult(status=ChargeResult.ERROR, code="idempotency_error", message=exc.user_message or "")
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            return ChargeResult(status=ChargeResult.ERROR, code="api_connection_error", message=exc.user_message or str(type(exc).__name__))
        except stripe.StripeError as exc:
            error = _get(exc.json_body or {}, "error", default={})
            return ChargeResult(
                status=ChargeResult.DECLINED, code=error.get("code") or "invalid_request_error",
                message=(exc.user_message or "")[:300], raw={"error": error},
            )
        status = intent.get("status")
        if status == "succeeded":
            return ChargeResult(
                status=ChargeResult.SUCCEEDED, charge_id=_id(intent.get("latest_charge")) or intent["id"],
                amount=intent.get("amount_received") or intent.get("amount") or amount,
                currency=(intent.get("currency") or currency).upper(), raw=intent,
            )
        if status == "requires_action":
            return ChargeResult(
                status=ChargeResult.DECLINED, code="authentication_required", decline_code="authentication_required",
                message="The card issuer requires the customer to authenticate this payment.", requires_action=True,
                raw=intent,
            )
        if status == "processing":
            return ChargeResult(status=ChargeResult.ERROR, code="processing", message="Stripe is still processing the payment.", raw=intent)
        error = intent.get("last_payment_error") or {}
        return self._decline(error, error.get("message") or f"The payment is {status}.", raw=intent)

    def _decline(self, error: dict, message: str, raw: dict | None = None) -> ChargeResult:
        code = error.get("code") or "card_declined"
        decline_code = error.get("decline_code") or ""
        requires_action = code == "authentication_required" or decline_code == "authentication_required"
        return ChargeResult(
            status=ChargeResult.DECLINED,
            charge_id=_id(error.get("charge")),
            code=code,
            decline_code=decline_code,
            advice_code=error.get("advice_code") or "",
            network_advice_code=error.get("network_advice_code") or "",
            network_decline_code=error.get("network_decline_code") or "",
            message=(error.get("message") or message)[:300],
            requires_action=requires_action,
            raw=raw or {"error": error},
        )

    # --- reading state ---------------------------------------------------------------

    def fetch_payment_state(self, *, payment) -> PaymentState:
        """Whether Stripe has the payment paid now (its PaymentIntent or Invoice). Read only."""
        ids = [payment.provider_payment_id, payment.reference]
        client = self.client()
        for object_id in ids:
            if object_id.startswith("pi_"):
                intent = _as_dict(client.v1.payment_intents.retrieve(object_id))
                if intent.get("status") == "succeeded":
                    return PaymentState(
                        paid=True, amount_paid=intent.get("amount_received") or intent.get("amount") or 0,
                        currency=(intent.get("currency") or "").upper(),
                        charge_id=_id(intent.get("latest_charge")) or intent["id"],
                        detail=f"Stripe PaymentIntent {object_id} succeeded.",
                    )
                return PaymentState(paid=False, detail=f"Stripe PaymentIntent {object_id} is {intent.get('status')}.")
            if object_id.startswith("in_"):
                invoice = _as_dict(client.v1.invoices.retrieve(object_id))
                if invoice.get("status") == "paid":
                    return PaymentState(
                        paid=True, amount_paid=invoice.get("amount_paid") or 0,
                        currency=(invoice.get("currency") or "").upper(),
                        charge_id=_id(invoice.get("charge")) or _id(invoice.get("payment_intent")) or invoice["id"],
                        detail=f"Stripe invoice {object_id} is paid.",
                    )
                return PaymentState(paid=False, detail=f"Stripe invoice {object_id} is {invoice.get('status')}.")
        return PaymentState(paid=False, detail="Tinko knows no Stripe PaymentIntent or invoice for this payment.")

    # --- hosted checkout ------------------------------------------------------------------

    def create_checkout(self, *, payment, link, token: str, success_url: str, cancel_url: str, locale: str = "") -> CheckoutSession:
        """A Checkout Session (payment mode) for the payment's amount, tied to ``link`` by metadata. Moves no money."""
        metadata = {"tinko_link_id": str(link.pk), "tinko_payment_id": str(payment.pk), "tinko_reference": payment.reference}
        params = {
            "mode": "payment",
            "line_items": [{
                "quantity": 1,
                "price_data": {
                    "currency": payment.currency.lower(),
                    "unit_amount": payment.amount,
                    "product_data": {"name": (payment.description or f"Payment {payment.reference}")[:250]},
                },
            }],
            "success_url": _append_query(success_url, "session_id={CHECKOUT_SESSION_ID}"),
            "cancel_url": cancel_url,
            "client_reference_id": str(link.pk),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        if payment.provider_customer_id:
            params["customer"] = payment.provider_customer_id
        elif payment.customer_id and payment.customer.email:
            params["customer_email"] = payment.customer.email
        if locale:
            params["locale"] = locale.split("-")[0].lower()
        try:
            session = _as_dict(self.client().v1.checkout.sessions.create(params))
        except stripe.StripeError as exc:
            logger.warning("Stripe refused a Checkout Session for payment %s: %s", payment.pk, exc.user_message)
            raise ProviderUnavailable("Stripe could not start the payment page; please try again in a moment.") from None
        except Exception:
            raise ProviderUnavailable("Stripe could not be reached; please try again in a moment.") from None
        return CheckoutSession(url=session["url"], reference=session["id"])

    def confirm_checkout(self, *, payment, link, params) -> CheckoutResult:
        """Re-fetch the Checkout Session named by ``params['session_id']``; paid only if Stripe says so for this link."""
        session_id = params.get("session_id") or ""
        if not session_id.startswith("cs_"):
            return CheckoutResult(status=CheckoutResult.FAILED, detail="No Stripe checkout to confirm.")
        try:
            session = _as_dict(self.client().v1.checkout.sessions.retrieve(session_id))
        except stripe.InvalidRequestError:
            return CheckoutResult(status=CheckoutResult.FAILED, detail="Stripe knows no such checkout.")
        except Exception:
            return CheckoutResult(status=CheckoutResult.PENDING, detail="Stripe could not be reached; still confirming.")
        if _get(session, "metadata", "tinko_link_id") != str(link.pk):
            return CheckoutResult(status=CheckoutResult.FAILED, detail="That checkout belongs to another payment.")
        if session.get("payment_status") == "paid":
            return CheckoutResult(
                status=CheckoutResult.PAID, charge_id=_id(session.get("payment_intent")) or session["id"],
                amount=session.get("amount_total") or 0, currency=(session.get("currency") or "").upper(),
                detail="Stripe confirmed the payment.",
            )
        if session.get("status") == "open" or (session.get("status") == "complete" and session.get("payment_status") == "unpaid"):
            return CheckoutResult(status=CheckoutResult.PENDING, detail="Stripe has not confirmed the payment yet.")
        return CheckoutResult(status=CheckoutResult.FAILED, detail=f"The checkout is {session.get('status')}.")

    # --- webhooks ---------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers, *, tolerance: int | None = TOLERANCE) -> WebhookEvent:
        """Verify ``Stripe-Signature`` (HMAC-SHA256, ``tolerance`` seconds; None skips the age check on replay)."""
        signature = headers.get("Stripe-Signature", "")
        if not signature:
            raise WebhookRejected("The Stripe-Signature header is missing.")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected("The body is not UTF-8 text.") from None
        try:
            stripe.WebhookSignature.verify_header(text, signature, self.account.secret("webhook_secret"), tolerance)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(f"The Stripe signature does not verify: {exc.user_message}") from None
        try:
            payload = textsafety.loads(text)
        except textsafety.JSONProblem as exc:
            raise WebhookRejected(f"The body is not JSON Tinko can take: {exc}.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not isinstance(payload.get("type"), str) \
                or not isinstance(_get(payload, "data", "object"), dict):
            raise WebhookRejected("The body is not a Stripe event (id, type and data.object are required).")
        return WebhookEvent(id=payload["id"], type=payload["type"], payload=payload, created=payload.get("created") or 0)

    def interpret_event(self, event: WebhookEvent) -> EventOutcome | None:
        """What ``event`` means for Tinko; None for an event type Tinko does not use. May re-fetch from Stripe."""
        obj = event.payload["data"]["object"]
        kind = event.type
        if kind == "payment_intent.payment_failed":
            return self._failure(event, intent=obj)
        if kind == "charge.failed":
            return self._failure(event, charge=obj)
        if kind == "invoice.payment_failed":
            intent = {}
            if _id(obj.get("payment_intent")):
                intent = _as_dict(self.client().v1.payment_intents.retrieve(
                    _id(obj.get("payment_intent")), {"expand": ["payment_method"]}
                ))
            return self._failure(event, intent=intent, invoice=obj)
        if kind == "payment_intent.succeeded":
            return self._intent_success(_as_dict(self.client().v1.payment_intents.retrieve(obj["id"])))
        if kind == "invoice.paid":
            return self._invoice_success(_as_dict(self.client().v1.invoices.retrieve(obj["id"])))
        if kind == "checkout.session.completed":
            return self._checkout_success(_as_dict(self.client().v1.checkout.sessions.retrieve(obj["id"])))
        if kind == "payment_method.automatically_updated":
            card = obj.get("card") or {}
            return EventOutcome(card_updates=[CardUpdate(
                payment_method_id=obj.get("id") or "", brand=(card.get("brand") or "").lower(), last4=card.get("last4") or "",
                exp_month=card.get("exp_month"), exp_year=card.get("exp_year"), fingerprint=card.get("fingerprint") or "",
            )])
        return None

    def _failure(self, event, *, intent=None, charge=None, invoice=None) -> EventOutcome:
        intent = intent or {}
        charge = charge or {}
        invoice = invoice or {}
        metadata = intent.get("metadata") or charge.get("metadata") or {}
        if metadata.get("tinko_attempt"):
            # Tinko's own re-charge: the attempt records its decline itself.
            return EventOutcome(note="A decline of Tinko's own re-charge; the attempt recorded it.")
        if metadata.get("tinko_link_id"):
            # A try on Tinko's pay page (Stripe Checkout): the customer is there and may try again;
            # re-planning now would send them a new link while they pay.
            return EventOutcome(note="A failed try on the pay page; the customer may try again there.")
        error = intent.get("last_payment_error") or {}
        outcome = charge.get("outcome") or {}
        method = error.get("payment_method") if isinstance(error.get("payment_method"), dict) else None
        if method is None and isinstance(intent.get("payment_method"), dict):
            method = intent["payment_method"]
        method = method or {}
        card = method.get("card") or _get(charge, "payment_method_details", "card", default={})
        billing = method.get("billing_details") or charge.get("billing_details") or {}
        intent_id = intent.get("id") or _id(charge.get("payment_intent")) or _id(invoice.get("payment_intent"))
        invoice_id = invoice.get("id") or _id(intent.get("invoice")) or _id(charge.get("invoice"))
        charge_id = _id(error.get("charge")) or charge.get("id") or _id(intent.get("latest_charge"))
        reference = metadata.get("tinko_reference") or invoice_id or intent_id or charge_id
        code = error.get("code") or charge.get("failure_code") or ""
        decline_code = error.get("decline_code") or ""
        if not decline_code and code == "card_declined":
            decline_code = outcome.get("reason") or ""
        failure = {
            "code": code,
            "decline_code": decline_code,
            "advice_code": error.get("advice_code") or outcome.get("advice_code") or "",
            "network_advice_code": error.get("network_advice_code") or outcome.get("network_advice_code") or "",
            "network_decline_code": error.get("network_decline_code") or outcome.get("network_decline_code") or "",
            "message": (error.get("message") or charge.get("failure_message") or "")[:1000],
        }
        if not any(failure.values()):
            failure["message"] = "Stripe reported the payment as failed without giving a reason."
        customer = {
            "id": _id(intent.get("customer")) or _id(charge.get("customer")) or _id(invoice.get("customer")),
            "email": billing.get("email") or intent.get("receipt_email") or invoice.get("customer_email") or "",
            "name": billing.get("name") or invoice.get("customer_name") or "",
        }
        phone = billing.get("phone") or ""
        if phone.startswith("+") and phone[1:].isdigit():
            customer["phone"] = phone
        data = {
            "event_id": charge_id or event.id,
            "reference": reference,
            "amount": invoice.get("amount_due") or intent.get("amount") or charge.get("amount"),
            "currency": (invoice.get("currency") or intent.get("currency") or charge.get("currency") or "").upper(),
            "provider": "stripe",
            "provider_payment_id": intent_id or charge_id,
            "occurred_at": _when(event.created or intent.get("created") or charge.get("created")).isoformat(),
            "description": (intent.get("description") or charge.get("description") or invoice.get("description") or "")[:500],
            "failure": {k: v for k, v in failure.items() if v},
            "customer": {k: v for k, v in customer.items() if v} or None,
            "payment_method": {
                k: v for k, v in {
                    "brand": (card.get("brand") or "").lower()[:20], "last4": card.get("last4") or "",
                    "exp_month": card.get("exp_month"), "exp_year": card.get("exp_year"),
                    "fingerprint": card.get("fingerprint") or "",
                }.items() if v
            } or None,
        }
        data = {k: v for k, v in data.items() if v not in (None, "")}
        try:
            report: FailureReport = parse_report(data)
        except ReportInvalid as exc:
            raise ValueError(f"The Stripe event does not describe a usable failure: {json.dumps(exc.errors)}") from None
        report.raw = event.payload["data"]["object"]
        report.provider_customer_id = customer["id"]
        report.provider_payment_method_id = method.get("id") or _id(intent.get("payment_method")) or _id(charge.get("payment_method"))
        return EventOutcome(failures=[report])

    def _intent_success(self, intent: dict) -> EventOutcome:
        if intent.get("status") != "succeeded":
            return EventOutcome(note=f"Stripe says PaymentIntent {intent.get('id')} is {intent.get('status')}, not succeeded.")
        metadata = intent.get("metadata") or {}
        return EventOutcome(successes=[SuccessFacts(
            references=tuple(r for r in (metadata.get("tinko_reference"), _id(intent.get("invoice")), intent["id"]) if r),
            # Keyed by the PaymentIntent: its checkout and invoice successes name the same one.
            charge_id=intent["id"],
            amount=intent.get("amount_received") or intent.get("amount") or 0,
            currency=(intent.get("currency") or "").upper(),
            occurred_at=_when(intent.get("created")),
            link_id=_int(metadata.get("tinko_link_id")),
            attempt_key=metadata.get("tinko_attempt") or "",
            payment_id=_int(metadata.get("tinko_payment_id")),
        )])

    def _invoice_success(self, invoice: dict) -> EventOutcome:
        if invoice.get("status") != "paid":
            return EventOutcome(note=f"Stripe says invoice {invoice.get('id')} is {invoice.get('status')}, not paid.")
        intent_id = _id(invoice.get("payment_intent"))
        return EventOutcome(successes=[SuccessFacts(
            references=tuple(r for r in (invoice["id"], intent_id) if r),
            charge_id=intent_id or invoice["id"],
            amount=invoice.get("amount_paid") or 0,
            currency=(invoice.get("currency") or "").upper(),
            occurred_at=_when(_get(invoice, "status_transitions", "paid_at") or invoice.get("created")),
        )])

    def _checkout_success(self, session: dict) -> EventOutcome:
        if session.get("payment_status") != "paid":
            return EventOutcome(note=f"Stripe says checkout {session.get('id')} is {session.get('payment_status')}, not paid.")
        metadata = session.get("metadata") or {}
        intent_id = _id(session.get("payment_intent"))
        return EventOutcome(successes=[SuccessFacts(
            references=tuple(r for r in (metadata.get("tinko_reference"), intent_id, session["id"]) if r),
            charge_id=intent_id or session["id"],
            amount=session.get("amount_total") or 0,
            currency=(session.get("currency") or "").upper(),
            occurred_at=_when(session.get("created")),
            link_id=_int(metadata.get("tinko_link_id")),
            payment_id=_int(metadata.get("tinko_payment_id")),
        )])


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


__all__ = ["HANDLED_EVENTS", "StripeProvider"]
