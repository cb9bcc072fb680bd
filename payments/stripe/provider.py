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

import dataclasses
import json
import logging
from datetime import datetime, timezone as dt_timezone

import stripe
from django.conf import settings
from django.utils import timezone

from payments.events import CardChange, CardUpdate, EventOutcome, SuccessFacts
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
from recovery.reports import FailureReport, ReportInvalid, parse_customer, parse_report
from tinko import textsafety

logger = logging.getLogger(__name__)

TOLERANCE = 300  # seconds: Stripe's own default for the signature's timestamp

HANDLED_EVENTS = (
    "payment_intent.payment_failed",
    "charge.failed",
    "invoice.payment_failed",
    "payment_intent.succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "checkout.session.completed",
    "payment_method.automatically_updated",
    "payment_method.attached",
    "customer.updated",
)

FAILURE_EVENTS = ("payment_intent.payment_failed", "charge.failed", "invoice.payment_failed")
# Invoice states in which nothing more can be collected.
INVOICE_CLOSED = {"paid": "paid", "void": "voided", "uncollectible": "marked uncollectible"}


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


def _subscription_of(invoice: dict) -> str:
    """The invoice's subscription: ``subscription`` before API version 2025-03-31, ``parent.subscription_details`` since."""
    return _id(invoice.get("subscription")) or _id(_get(invoice, "parent", "subscription_details", "subscription"))


def _card_words(method: dict) -> str:
    card = method.get("card") or {}
    if card.get("last4"):
        return f"{(card.get('brand') or 'card').capitalize()} •••• {card['last4']}"
    return method.get("id") or "the card"


def _invoice_id(payment) -> str:
    """The Stripe invoice a payment is the debt of (a subscription renewal), or ""."""
    for object_id in (payment.reference, payment.provider_payment_id):
        if object_id.startswith("in_"):
            return object_id
    return ""


def _with_card(result: ChargeResult, card: str) -> ChargeResult:
    return dataclasses.replace(result, card=card) if card else result


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
        if not payment.provider_customer_id:
            return "Stripe has no saved card of this customer that Tinko can charge off-session"
        if not payment.provider_payment_method_id and not _invoice_id(payment):
            return "Stripe has no saved card of this customer that Tinko can charge off-session"
        return ""

    # --- off-session re-charge -----------------------------------------------------

    def charge_off_session(self, *, payment, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        """Re-charge off-session with the card the customer wants now. MOVES MONEY, once per idempotency key.

        A failed invoice (a subscription renewal) is re-charged by paying the
        invoice itself (``POST /v1/invoices/{id}/pay``), after re-fetching it: an
        invoice that is paid, void or uncollectible is not charged (``status="settled"``).
        Anything else is a PaymentIntent confirmed off-session. The card is
        resolved from Stripe at this moment (:meth:`resolve_payment_method`).

        Declines come back with Stripe's ``code``, ``decline_code``, ``advice_code``
        and network codes; ``authentication_required`` (or a PaymentIntent that
        needs action) sets ``requires_action``. An unreachable Stripe is
        ``status="error"`` (retry with the same key).
        """
        invoice_id = _invoice_id(payment)
        try:
            invoice = _as_dict(self.client().v1.invoices.retrieve(invoice_id)) if invoice_id else {}
            if invoice.get("status") in ("void", "uncollectible"):
                return self._pay_invoice(invoice, method={}, card="", currency=currency, idempotency_key=idempotency_key)
            method, why = self.resolve_payment_method(payment=payment, invoice=invoice)
        except stripe.StripeError as exc:
            if isinstance(exc, stripe.InvalidRequestError):
                error = _get(exc.json_body or {}, "error", default={})
                return ChargeResult(status=ChargeResult.DECLINED, code=error.get("code") or "invalid_request_error",
                                    message=(exc.user_message or "")[:300], raw={"error": error})
            return ChargeResult(status=ChargeResult.ERROR, code="api_connection_error", message=exc.user_message or type(exc).__name__)
        card = f"{_card_words(method)} ({why})" if method else ""
        if invoice_id:
            return self._pay_invoice(invoice, method=method, card=card, currency=currency, idempotency_key=idempotency_key)
        try:
            earlier = self._earlier_attempt_intent(payment, exclude_key=idempotency_key)
        except stripe.StripeError as exc:
            # Not knowing whether an earlier re-charge took the money, Tinko charges nothing new.
            return ChargeResult(status=ChargeResult.ERROR, code="api_connection_error",
                                message=f"Stripe could not say whether an earlier re-charge succeeded "
                                        f"({exc.user_message or type(exc).__name__}); nothing was charged")
        if earlier is not None:
            return self._earlier_result(earlier, currency)
        if not method:
            return ChargeResult(status=ChargeResult.DECLINED, code="payment_method_missing",
                                message="Stripe has no card of this customer to charge.")
        params = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": payment.provider_customer_id,
            "payment_method": method["id"],
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
        except stripe.StripeError as exc:
            return _with_card(self._stripe_error(exc), card)
        status = intent.get("status")
        if status == "succeeded":
            return ChargeResult(
                status=ChargeResult.SUCCEEDED, charge_id=_id(intent.get("latest_charge")) or intent["id"],
                amount=intent.get("amount_received") or intent.get("amount") or amount,
                currency=(intent.get("currency") or currency).upper(), raw=intent, card=card,
            )
        return _with_card(self._intent_result(intent, status, currency), card)

    def _earlier_attempt_intent(self, payment, *, exclude_key: str = "") -> dict | None:
        """The PaymentIntent of an earlier re-charge of Tinko's for ``payment`` that took or may take money, or None. Read only.

        Only attempts whose outcome Tinko does not know are asked about: they
        reached Stripe and no answer came back (a decline or a settled invoice
        is an answer). Without such an attempt no request is made. Stripe keeps
        no look-up by idempotency key, so the customer's PaymentIntents created
        since the first of those attempts are listed and matched by the
        attempt's key in their metadata (``tinko_attempt``); a succeeded one (or
        one still processing) is returned. Raises ``stripe.StripeError`` when
        Stripe cannot be asked.
        """
        from recovery.models import AttemptKind, AttemptStatus, RecoveryAttempt

        if not payment.provider_customer_id or _invoice_id(payment):
            return None
        unknown = {
            key: created
            for key, created, result in RecoveryAttempt.objects.filter(
                payment_id=payment.pk, kind=AttemptKind.AUTO_RETRY, psp_calls__gt=0,
            ).exclude(idempotency_key=exclude_key).exclude(status=AttemptStatus.SUCCEEDED)
            .values_list("idempotency_key", "created_at", "result")
            if (result or {}).get("status") not in (ChargeResult.DECLINED, ChargeResult.SETTLED, ChargeResult.SUCCEEDED)
        }
        if not unknown:
            return None
        # An hour before the first of them: room for a clock that differs from Stripe's.
        since = int(min(unknown.values()).timestamp()) - 3600
        listed = self.client().v1.payment_intents.list({
            "customer": payment.provider_customer_id, "created": {"gte": since}, "limit": 100,
        })
        for intent in listed.auto_paging_iter():
            intent = _as_dict(intent)
            if _get(intent, "metadata", "tinko_attempt") in unknown and intent.get("status") in ("succeeded", "processing"):
                return intent
        return None

    def _earlier_result(self, intent: dict, currency: str) -> ChargeResult:
        """What an earlier attempt's PaymentIntent means for a new re-charge: it paid, or it may still pay."""
        key = _get(intent, "metadata", "tinko_attempt", default="")
        if intent.get("status") != "succeeded":
            return ChargeResult(status=ChargeResult.ERROR, code="processing", raw=intent,
                                message=f"An earlier re-charge (Stripe PaymentIntent {intent['id']}) is still processing; "
                                        "nothing new was charged")
        return ChargeResult(
            status=ChargeResult.SETTLED, code=ChargeResult.EARLIER_ATTEMPT_PAID, attempt_key=key,
            charge_id=_id(intent.get("latest_charge")) or intent["id"],
            amount=intent.get("amount_received") or intent.get("amount") or 0,
            currency=(intent.get("currency") or currency).upper(), raw=intent,
            message=(f"An earlier re-charge whose answer was lost succeeded at Stripe "
                     f"(PaymentIntent {intent['id']}); nothing was charged again."),
        )

    def _stripe_error(self, exc: stripe.StripeError) -> ChargeResult:
        if isinstance(exc, stripe.CardError):
            return self._decline(_get(exc.json_body or {}, "error", default={}), exc.user_message or "")
        if isinstance(exc, stripe.IdempotencyError):
            return ChargeResult(status=ChargeResult.ERROR, code="idempotency_error", message=exc.user_message or "")
        if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)):
            return ChargeResult(status=ChargeResult.ERROR, code="api_connection_error", message=exc.user_message or str(type(exc).__name__))
        error = _get(exc.json_body or {}, "error", default={})
        return ChargeResult(
            status=ChargeResult.DECLINED, code=error.get("code") or "invalid_request_error",
            message=(exc.user_message or "")[:300], raw={"error": error},
        )

    def _intent_result(self, intent: dict, status, currency: str) -> ChargeResult:
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
        if code == "invoice_payment_intent_requires_action":
            # Paying an invoice whose card needs 3-D Secure: the same as a PaymentIntent's authentication_required.
            code = decline_code = "authentication_required"
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

    def _pay_invoice(self, invoice: dict, *, method: dict, card: str, currency: str, idempotency_key: str) -> ChargeResult:
        """Pay the (just re-fetched) invoice off-session with ``method``; nothing is charged for a closed invoice."""
        invoice_id = invoice["id"]
        status = invoice.get("status")
        if status in ("void", "uncollectible"):
            return ChargeResult(status=ChargeResult.SETTLED, code=f"invoice_{status}",
                                message=f"Stripe invoice {invoice_id} is {INVOICE_CLOSED[status]}; nothing was charged.")
        params = {"off_session": True}
        if method:
            # A legacy card or source (card_…, src_…) is paid with as ``source``.
            params["payment_method" if method["id"].startswith("pm_") else "source"] = method["id"]
        try:
            paid = _as_dict(self.client().v1.invoices.pay(invoice_id, params, {"idempotency_key": idempotency_key}))
        except stripe.StripeError as exc:
            if status == "paid":
                # Not this attempt's payment (Stripe would have replayed that one under the same key).
                return ChargeResult(status=ChargeResult.SETTLED, code="invoice_paid",
                                    amount=invoice.get("amount_paid") or 0, currency=(invoice.get("currency") or "").upper(),
                                    message=f"Stripe invoice {invoice_id} was already paid; nothing was charged.")
            return _with_card(self._stripe_error(exc), card)
        if paid.get("status") == "paid":
            intent_id = self._invoice_intent_id(paid)
            return ChargeResult(
                status=ChargeResult.SUCCEEDED, charge_id=intent_id or invoice_id,
                amount=paid.get("amount_paid") or paid.get("amount_due") or 0,
                currency=(paid.get("currency") or currency).upper(), raw=paid, card=card,
            )
        intent = self._invoice_intent(paid)
        return _with_card(self._intent_result(intent, intent.get("status") or paid.get("status"), currency), card)

    def resolve_payment_method(self, *, payment, invoice: dict | None = None) -> tuple[dict, str]:
        """The card the customer wants charged now, and why: (payment method, reason). Read only.

        Stripe's own order for invoice payments: the subscription's default
        payment method (or source), then the customer's
        ``invoice_settings.default_payment_method``, then the customer's default
        source; then the payment's saved card (the one that failed, or the one the customer added since).
        ({}, "") when none is known.
        """
        client = self.client()
        subscription_id = _subscription_of(invoice or {})
        if subscription_id:
            subscription = _as_dict(client.v1.subscriptions.retrieve(subscription_id))
            method = subscription.get("default_payment_method")
            if method:
                return self._method(method), "the subscription's default payment method"
            if subscription.get("default_source"):
                return self._method(subscription["default_source"]), "the subscription's default card"
        if payment.provider_customer_id:
            customer = _as_dict(client.v1.customers.retrieve(
                payment.provider_customer_id, {"expand": ["invoice_settings.default_payment_method", "default_source"]}
            ))
            method = _get(customer, "invoice_settings", "default_payment_method")
            if method:
                return self._method(method), "the customer's default payment method"
            source = customer.get("default_source")
            if source:
                return self._method(source), "the customer's default card"
        if payment.provider_payment_method_id:
            return ({"id": payment.provider_payment_method_id, "card": {
                "brand": payment.card_brand, "last4": payment.card_last4}}, "the payment's saved card")
        return {}, ""

    def _method(self, method) -> dict:
        if isinstance(method, dict):
            if method.get("object") == "card":  # a legacy source: its card details are the object itself
                return {"id": method["id"], "card": {"brand": method.get("brand") or "", "last4": method.get("last4") or ""}}
            return method
        return _as_dict(self.client().v1.payment_methods.retrieve(method)) if method.startswith("pm_") else {"id": method}

    def _invoice_intent_id(self, invoice: dict) -> str:
        if "payment_intent" in invoice:  # before API version 2025-03-31
            return _id(invoice.get("payment_intent"))
        return self._invoice_intent(invoice).get("id") or ""

    def _invoice_intent(self, invoice: dict) -> dict:
        """The invoice's latest PaymentIntent, expanded. Read only.

        Before API version 2025-03-31 the invoice names it (``payment_intent``);
        since, it is found through the invoice's payments
        (``GET /v1/invoice_payments?invoice=…``).
        """
        client = self.client()
        if "payment_intent" in invoice:
            intent_id = _id(invoice.get("payment_intent"))
            if not intent_id:
                return {}
            return _as_dict(client.v1.payment_intents.retrieve(intent_id, {"expand": ["payment_method"]}))
        page = _as_dict(client.v1.invoice_payments.list({
            "invoice": invoice["id"], "expand": ["data.payment.payment_intent"], "limit": 20,
        }))
        payments = [p for p in page.get("data") or [] if _get(p, "payment", "type") == "payment_intent"]
        if not payments:
            return {}
        intent = _get(max(payments, key=lambda p: p.get("created") or 0), "payment", "payment_intent")
        if isinstance(intent, str):
            intent = _as_dict(client.v1.payment_intents.retrieve(intent, {"expand": ["payment_method"]}))
        return intent or {}

    def _invoice_of(self, obj: dict) -> str:
        """The invoice a PaymentIntent or Charge paid for, or "". Read only.

        Before API version 2025-03-31 the object says (``invoice``, null for none);
        since, the field is gone and the invoice's payments are asked.
        """
        if "invoice" in obj:
            return _id(obj.get("invoice"))
        intent_id = obj["id"] if obj.get("object") == "payment_intent" else _id(obj.get("payment_intent"))
        if not intent_id:
            return ""
        page = _as_dict(self.client().v1.invoice_payments.list({
            "payment": {"type": "payment_intent", "payment_intent": intent_id}, "limit": 1,
        }))
        found = page.get("data") or []
        return _id(found[0].get("invoice")) if found else ""

    def fetch_customer_contact(self, customer_id: str) -> dict:
        """The Stripe Customer's e-mail, phone, name and first preferred locale. Read only."""
        from tinko import phones

        customer = _as_dict(self.client().v1.customers.retrieve(customer_id))
        if customer.get("deleted"):
            return {}
        # Only what Tinko's own report validation takes: a bad value must not cost the failure.
        checked = parse_customer({
            "email": customer.get("email") or "", "name": (customer.get("name") or "")[:200],
            "phone": phones.normalize(customer.get("phone") or ""),
            "locale": ((customer.get("preferred_locales") or [""])[0] or "")[:35],
        })
        return {k: v for k, v in checked.items() if v}

    # --- reading state ---------------------------------------------------------------

    def fetch_payment_state(self, *, payment) -> PaymentState:
        """Whether Stripe has the payment paid now (its PaymentIntent or Invoice, or a re-charge of Tinko's). Read only.

        Tinko's own re-charges whose answers were all lost are asked about
        first: one that succeeded ends the payment ``recovered``, credited to its attempt.
        """
        earlier = self._earlier_attempt_intent(payment)
        if earlier is not None and earlier.get("status") == "succeeded":
            return PaymentState(
                paid=True, amount_paid=earlier.get("amount_received") or earlier.get("amount") or 0,
                currency=(earlier.get("currency") or "").upper(), charge_id=_id(earlier.get("latest_charge")) or earlier["id"],
                detail=f"Tinko's re-charge (Stripe PaymentIntent {earlier['id']}) succeeded.",
                attempt_key=_get(earlier, "metadata", "tinko_attempt", default=""),
            )
        # An invoice decides over its PaymentIntent: a re-charge pays the invoice with a new one.
        ids = sorted([payment.provider_payment_id, payment.reference], key=lambda i: not i.startswith("in_"))
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
                        charge_id=self._invoice_intent_id(invoice) or invoice["id"],
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

    def webhook_ordering_key(self, event: WebhookEvent) -> str:
        """The customer the event is about (else its invoice, PaymentIntent or object): a renewal's events stay in order."""
        obj = event.payload["data"]["object"]
        for field_name in ("customer", "invoice", "payment_intent", "id"):
            key = _id(obj.get(field_name))
            if key and isinstance(key, str):
                return key[:255]
        return ""

    def interpret_event(self, event: WebhookEvent) -> EventOutcome | None:
        """What ``event`` means for Tinko; None for an event type Tinko does not use. May re-fetch from Stripe."""
        obj = event.payload["data"]["object"]
        kind = event.type
        if kind in FAILURE_EVENTS:
            return self._failure_event(event, kind, obj)
        if kind == "payment_intent.succeeded":
            return self._intent_success(_as_dict(self.client().v1.payment_intents.retrieve(obj["id"])))
        if kind in ("invoice.paid", "invoice.payment_succeeded"):
            return self._invoice_success(_as_dict(self.client().v1.invoices.retrieve(obj["id"])))
        if kind == "checkout.session.completed":
            return self._checkout_success(_as_dict(self.client().v1.checkout.sessions.retrieve(obj["id"])))
        if kind == "payment_method.automatically_updated":
            card = obj.get("card") or {}
            return EventOutcome(card_updates=[CardUpdate(
                payment_method_id=obj.get("id") or "", brand=(card.get("brand") or "").lower(), last4=card.get("last4") or "",
                exp_month=card.get("exp_month"), exp_year=card.get("exp_year"), fingerprint=card.get("fingerprint") or "",
            )])
        if kind == "payment_method.attached":
            card = obj.get("card") or {}
            if not _id(obj.get("customer")):
                return EventOutcome(note="A payment method attached to no customer.")
            return EventOutcome(card_changes=[CardChange(
                customer_id=_id(obj.get("customer")), payment_method_id=obj.get("id") or "",
                brand=(card.get("brand") or "").lower(), last4=card.get("last4") or "",
                exp_month=card.get("exp_month"), exp_year=card.get("exp_year"), fingerprint=card.get("fingerprint") or "",
                why="the customer added a card",
            )])
        if kind == "customer.updated":
            previous = _get(event.payload, "data", "previous_attributes", default={})
            changed = "default_source" in previous or "default_payment_method" in (previous.get("invoice_settings") or {})
            new_default = _id(_get(obj, "invoice_settings", "default_payment_method")) or _id(obj.get("default_source"))
            if not changed or not new_default:
                return EventOutcome(note="The customer's default payment method did not change.")
            return EventOutcome(card_changes=[CardChange(
                customer_id=obj.get("id") or "", payment_method_id="", why="the customer chose a new default payment method",
            )])
        return None

    def _failure_event(self, event, kind: str, obj: dict) -> EventOutcome:
        """A failure reported by any of the three events, tied to its invoice when there is one.

        Whatever event reports a subscription invoice's failure (and in either API
        shape), the payment's reference is the invoice id and the failure's id is
        the declined charge, so the twins of one decline record one failure of one payment.
        """
        if kind == "invoice.payment_failed":
            return self._failure(event, intent=self._invoice_intent(obj), invoice=obj)
        metadata = obj.get("metadata") or {}
        found = {"intent": obj} if kind == "payment_intent.payment_failed" else {"charge": obj}
        if metadata.get("tinko_attempt") or metadata.get("tinko_link_id"):
            return self._failure(event, **found)
        invoice_id = self._invoice_of(obj)
        invoice = _as_dict(self.client().v1.invoices.retrieve(invoice_id)) if invoice_id else {}
        return self._failure(event, invoice=invoice, **found)

    def _failure(self, event, *, intent=None, charge=None, invoice=None) -> EventOutcome:
        intent = intent or {}
        charge = charge or {}
        invoice = invoice or {}
        metadata = intent.get("metadata") or charge.get("metadata") or {}
        if metadata.get("tinko_attempt"):
            # Tinko's own re-charge: the attempt records its decline itself.
            return EventOutcome(note="A decline of Tinko's own re-charge; the attempt recorded it.",
                                own_attempt=metadata["tinko_attempt"])
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
        charge_id = (_id(error.get("charge")) or charge.get("id") or _id(intent.get("latest_charge"))
                     or _id(invoice.get("charge")))
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
        # A number the report would refuse is left out: it must not cost the failure.
        from tinko import phones

        phone = phones.normalize(billing.get("phone") or "")
        if phone:
            customer["phone"] = phone
        fetched = False
        if customer["id"] and (not (customer.get("email") or customer.get("phone")) or not customer.get("name")):
            contact, fetched = self.contact_once(customer["id"])
            for key, value in contact.items():
                customer[key] = customer.get(key) or value
        data = {
            "event_id": charge_id or event.id,
            "reference": reference,
            "amount": invoice.get("amount_remaining") or invoice.get("amount_due") or intent.get("amount") or charge.get("amount"),
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
        report.customer_fetched = fetched
        if invoice.get("next_payment_attempt") and invoice.get("status") == "open":
            # Stripe's own automatic retry of the invoice (Smart Retries or a custom schedule).
            report.provider_retry_at = _when(invoice["next_payment_attempt"])
        return EventOutcome(failures=[report])

    def _intent_success(self, intent: dict) -> EventOutcome:
        if intent.get("status") != "succeeded":
            return EventOutcome(note=f"Stripe says PaymentIntent {intent.get('id')} is {intent.get('status')}, not succeeded.")
        metadata = intent.get("metadata") or {}
        invoice_id = "" if metadata.get("tinko_attempt") or metadata.get("tinko_link_id") else self._invoice_of(intent)
        return EventOutcome(successes=[SuccessFacts(
            references=tuple(r for r in (metadata.get("tinko_reference"), invoice_id, intent["id"]) if r),
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
        intent_id = self._invoice_intent_id(invoice)
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
