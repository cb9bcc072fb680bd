"""The recovery API: ingestion, payments, manual actions, retry policies. Thin: services do the work."""

from __future__ import annotations

import threading

from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from recovery import ingestion, services
from recovery.api import serializers as s
from recovery.messaging import pay_url
from recovery.models import FailureEvent, Payment, RecoveryAttempt, RecoveryLink, RetryPolicy
from recovery.reports import ReportInvalid, parse_report
from tinko import orgconfig
from tinko.api.exceptions import error_body
from tinko.api.idempotency import IdempotencyConflict, idempotent
from tinko.api.serializers import ErrorSerializer
from tinko.tenancy import get_object_for_org

BATCH_LIMIT = 1000
# Batches one process works on at once; the others wait their turn. A process runs Python one
# thread at a time, so a second batch beside the first takes turns on the same core and ends
# no sooner, while both hold their thousand reports, rows and answers in memory (a gunicorn
# worker sent two clients' batches peaked at 159 MB, 152 MB taking them in turn); a waiting
# batch holds a database connection and, with an Idempotency-Key, its key's row, nothing it
# could deadlock on.
_BATCH_TURN = threading.Semaphore(1)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description=(
        "Any unique string (a UUID). Repeating a request with the same key and body replays the first "
        "response (header `Idempotent-Replayed: true`); the same key with a different body answers 409. "
        "Keys are kept for 24 hours."
    ),
)

EXAMPLE_REPORT = {
    "event_id": "evt_1QxY2Z",
    "reference": "order-10042",
    "amount": 4999,
    "currency": "USD",
    "provider": "stripe",
    "provider_payment_id": "pi_3QxY2Z",
    "occurred_at": "2026-11-28T09:30:00Z",
    "description": "Pro plan, December",
    "failure": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."},
    "customer": {"id": "cus_123", "email": "ada@example.com", "name": "Ada Lovelace", "locale": "en", "timezone": "America/New_York"},
    "payment_method": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2028, "fingerprint": "Xt5EWLLDS7FJjR1c"},
    "metadata": {"plan": "pro"},
}
EXAMPLE_RESULT = {
    "id": 812,
    "duplicate": False,
    "payment": {"reference": "order-10042", "status": "recovering", "amount": 4999, "currency": "USD"},
    "classification": {
        "category": "insufficient_funds", "retryable": True, "action": "auto_retry",
        "reason": "Stripe decline code insufficient_funds: not enough money on the card (rule #27).",
    },
    "next_attempt": {
        "kind": "auto_retry", "channel": "psp", "scheduled_for": "2026-11-29T13:00:00Z",
        "reason": "Retry 1 of 4: insufficient funds, after 1 day, outside quiet hours in America/New_York",
    },
}


def _error_response(description: str, **examples: tuple[str, str]) -> OpenApiResponse:
    """A documented error answer in the API's error shape; ``examples`` maps a name to (type, message)."""
    return OpenApiResponse(
        ErrorSerializer,
        description=description,
        examples=[
            OpenApiExample(name.replace("_", " ").capitalize(), value={"error": {"type": type, "message": message}})
            for name, (type, message) in examples.items()
        ],
    )


KEY_REUSED = ("idempotency_conflict", str(IdempotencyConflict.default_detail))
KEY_REUSED_409 = _error_response("The Idempotency-Key was used for a different request.", key_reused=KEY_REUSED)


RETRY_REFUSED_EXAMPLE = (
    "The card network forbids another attempt: Mastercard advice code 03: Do not try again; Mastercard charges for "
    "retries (rule #258). The card network forbids any reattempt, so this payment is never retried automatically."
)


def _action_409(description: str, message: str) -> OpenApiResponse:
    """Manual actions answer 409 when the payment's state forbids them, or for a reused Idempotency-Key."""
    return _error_response(
        f"{description} Or: the Idempotency-Key was used for a different request.",
        not_allowed=("conflict", message), key_reused=KEY_REUSED,
    )


def _validation_error(errors: dict) -> exceptions.ValidationError:
    return exceptions.ValidationError(errors)


class PaymentFailedView(APIView):
    @extend_schema(
        operation_id="payment_failed_create",
        summary="Report a failed payment",
        description=(
            "Records the failure, classifies it and plans the recovery, in one transaction. A repeated "
            "`event_id` answers 200 with `duplicate: true` and changes nothing. A new failure of a known "
            "`reference` is added to that payment and re-plans it."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.FailureReportSerializer,
        responses={
            201: OpenApiResponse(s.IngestResponseSerializer, description="Recorded."),
            200: OpenApiResponse(s.IngestResponseSerializer, description="A duplicate `event_id`; nothing changed."),
            409: KEY_REUSED_409,
        },
        examples=[
            OpenApiExample("Insufficient funds", value=EXAMPLE_REPORT, request_only=True),
            OpenApiExample("Recorded", value=EXAMPLE_RESULT, response_only=True, status_codes=["201"]),
        ],
        tags=["ingestion"],
    )
    @idempotent(retry_integrity_errors=True, claim_with_lookup=True)
    def post(self, request):
        try:
            report = parse_report(request.data)
        except ReportInvalid as invalid:
            raise _validation_error(invalid.errors) from None
        organization = request.auth.organization
        # The organization was read with the key: its configuration may come from this process (tinko/orgconfig.py).
        with orgconfig.pinned(organization):
            (result,) = ingestion.record_failures(organization=organization, reports=[report], savepoint=False)
        return Response(
            s.ingest_result_data(result), status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED
        )


class PaymentFailedBatchView(APIView):
    @extend_schema(
        operation_id="payment_failed_batch_create",
        summary="Report up to 1,000 failed payments",
        description=(
            "One result per item, in order: `status` 201 (recorded), 200 (duplicate `event_id`) or 400 (invalid, "
            "with `error`). Invalid items do not block valid ones. The request itself answers 200."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.BatchRequestSerializer,
        responses={200: s.BatchResponseSerializer, 409: KEY_REUSED_409},
        examples=[
            OpenApiExample("Two reports", value={"events": [EXAMPLE_REPORT, {"reference": "order-10043"}]}, request_only=True),
            OpenApiExample(
                "Results",
                value={"results": [
                    {"index": 0, "status": 201, **EXAMPLE_RESULT},
                    {"index": 1, "status": 400, "error": {
                        "type": "validation_error", "message": "Some fields are invalid: amount, currency, provider, failure.",
                        "fields": {"amount": ["This field is required."]}}},
                ]},
                response_only=True,
            ),
        ],
        tags=["ingestion"],
    )
    @idempotent(retry_integrity_errors=True)
    def post(self, request):
        with _BATCH_TURN:
            return self._record(request)

    def _record(self, request):
        events = request.data.get("events") if isinstance(request.data, dict) else None
        if not isinstance(events, list):
            raise _validation_error({"events": ["Expected a list of failure reports."]})
        if not events:
            raise _validation_error({"events": ["Give at least one failure report."]})
        if len(events) > BATCH_LIMIT:
            raise _validation_error({"events": [f"At most {BATCH_LIMIT} reports per request; got {len(events)}."]})
        results: list = [None] * len(events)
        valid, positions = [], []
        for index, item in enumerate(events):
            try:
                valid.append(parse_report(item))
                positions.append(index)
            except ReportInvalid as invalid:
                message = "Some fields are invalid: " + ", ".join(invalid.errors) + "."
                results[index] = {
                    "index": index, "status": 400,
                    **error_body(type="validation_error", message=message, fields=invalid.errors),
                }
        if valid:
            organization = request.auth.organization
            with orgconfig.pinned(organization):
                recorded = ingestion.record_failures(organization=organization, reports=valid, savepoint=False)
            for index, result in zip(positions, recorded):
                results[index] = {"index": index, "status": 200 if result.duplicate else 201, **s.ingest_result_data(result)}
        return Response({"results": results})


class PaymentPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def decode_cursor(self, request):
        # DRF answers a cursor it cannot decode with 404; it is an invalid parameter.
        from rest_framework.exceptions import NotFound, ValidationError

        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": ["Invalid cursor: use the next or previous link of a page."]}) from None


def _payments_for(request):
    return Payment.objects.filter(organization=request.auth.organization).select_related("customer")


@extend_schema_view(
    get=extend_schema(
        operation_id="payments_list",
        summary="List payments under recovery",
        description="Newest first, with cursor pagination (`next`/`previous` links).",
        parameters=[s.PaymentFilterSerializer, OpenApiParameter("limit", int, description="Page size, at most 200.")],
        responses={
            200: s.PaymentSerializer(many=True),
            400: _error_response(
                "A filter or the cursor has an invalid value.",
                invalid_filter=("validation_error", "Some fields are invalid: status."),
            ),
        },
        tags=["payments"],
    )
)
class PaymentListView(generics.ListAPIView):
    serializer_class = s.PaymentSerializer
    pagination_class = PaymentPagination

    def get_queryset(self):
        filters = s.PaymentFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        qs = _payments_for(self.request)
        for name in ("status", "category", "provider"):
            if name in f:
                qs = qs.filter(**{name: f[name]})
        if "created_after" in f:
            qs = qs.filter(created_at__gte=f["created_after"])
        if "created_before" in f:
            qs = qs.filter(created_at__lt=f["created_before"])
        return qs


class PaymentDetailView(APIView):
    @extend_schema(
        operation_id="payments_retrieve",
        summary="A payment with its failures, attempts and links",
        responses={200: s.PaymentDetailSerializer},
        tags=["payments"],
    )
    def get(self, request, reference):
        return _payment_detail(request, reference)


def _payment_detail(request, reference: str) -> Response:
    qs = _payments_for(request).prefetch_related(
        Prefetch("failure_events", queryset=FailureEvent.objects.order_by("occurred_at", "pk")),
        Prefetch("attempts", queryset=RecoveryAttempt.objects.order_by("sequence")),
        Prefetch("links", queryset=RecoveryLink.objects.order_by("created_at", "pk")),
    )
    payment = get_object_for_org(request.auth.organization, qs, reference=reference)
    return Response(s.PaymentDetailSerializer(payment).data)


class PaymentActionView(APIView):
    """A manual action on ``payments/<reference>/<action>`` (POST only, in the schema).

    References are the merchant's own and may end in an action's name
    ("renewals/cancel"); that payment's detail URL matches the action's route,
    so a GET here is the detail of the whole path.
    """

    action_name: str

    @extend_schema(exclude=True)
    def get(self, request, reference):
        return _payment_detail(request, f"{reference}/{self.action_name}")

    @staticmethod
    def perform(request, reference, service):
        """Run ``service`` on this organization's payment; a state that forbids it answers 409."""
        payment = get_object_for_org(request.auth.organization, Payment, reference=reference)
        try:
            return service(payment=payment, actor=request.auth, request=request)
        except services.RecoveryError as error:
            raise RecoveryConflict(error.message, code=error.code) from None


class RecoveryConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PaymentRecoveryLinkView(PaymentActionView):
    action_name = "recovery_link"

    @extend_schema(
        operation_id="payments_recovery_link_create",
        summary="Create a new pay link",
        description="Earlier live links stop working. The URL is in this response only.",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: s.NewLinkSerializer,
            409: _action_409(
                "The payment is recovered or cancelled.", "The payment is recovered; there is nothing left to pay."
            ),
        },
        tags=["payments"],
    )
    @idempotent
    def post(self, request, reference):
        link, token = self.perform(request, reference, services.send_recovery_link)
        data = s.LinkSerializer(link).data
        data["url"] = pay_url(token)
        return Response(data, status=status.HTTP_201_CREATED)


class PaymentRetryNowView(PaymentActionView):
    action_name = "retry_now"

    @extend_schema(
        operation_id="payments_retry_now",
        summary="Re-charge now",
        description=(
            "Schedules an automatic re-charge for now (the scheduler runs it within seconds), replacing what was "
            "scheduled. Inside the customer's quiet hours it is scheduled for their end (only a person in the "
            "console may override them). Refused with 409 when the card networks' rules or the payment's state "
            "forbid it."
        ),
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: s.AttemptSerializer,
            409: _action_409("Not allowed now; `message` says why.", RETRY_REFUSED_EXAMPLE),
        },
        tags=["payments"],
    )
    @idempotent
    def post(self, request, reference):
        attempt = self.perform(request, reference, services.retry_now)
        return Response(s.AttemptSerializer(attempt).data, status=status.HTTP_201_CREATED)


class PaymentCancelView(PaymentActionView):
    action_name = "cancel"

    @extend_schema(
        operation_id="payments_cancel",
        summary="Cancel the recovery",
        description="Scheduled attempts are cancelled and live links revoked. Cancelling twice is harmless.",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: s.PaymentSerializer,
            409: _action_409(
                "The payment is already recovered.", "The payment is already recovered; there is nothing to cancel."
            ),
        },
        tags=["payments"],
    )
    @idempotent
    def post(self, request, reference):
        payment = self.perform(request, reference, services.cancel_recovery)
        return Response(s.PaymentSerializer(payment).data)


class PaymentPaidView(PaymentActionView):
    action_name = "paid"

    @extend_schema(
        operation_id="payments_report_paid",
        summary="Report the payment paid outside Tinko",
        description=(
            "The customer paid another way (bank transfer, your own retry). The recovery ends as `recovered`, "
            "attributed to no channel; scheduled attempts are cancelled and live links revoked. Reporting it again "
            "answers the payment unchanged. Held-out payments are reported this way too, so the dashboard can "
            "compare recovery with and without Tinko."
        ),
        request=s.ReportPaidSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: s.PaymentSerializer,
            400: _error_response("The amount is not a whole number of minor units between 1 and the payment's amount."),
            409: KEY_REUSED_409,
        },
        tags=["payments"],
    )
    @idempotent
    def post(self, request, reference):
        body = s.ReportPaidSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        payment = get_object_for_org(request.auth.organization, Payment, reference=reference)
        try:
            payment = services.report_paid(
                payment=payment, amount=body.validated_data.get("amount"), actor=request.auth, request=request
            )
        except services.RecoveryError as error:
            raise _validation_error({"amount": [error.message]}) from None
        return Response(s.PaymentSerializer(payment).data)


POLICY_EXAMPLE = {
    "name": "Subscriptions",
    "steps": {
        "insufficient_funds": [
            {"action": "recharge", "after_seconds": 86400},
            {"action": "message", "after_seconds": 0, "channel": ""},
            {"action": "recharge", "after_seconds": 259200},
            {"action": "message", "after_seconds": 172800, "channel": "sms"},
        ],
        "card_declined": [{"action": "message", "after_seconds": 0, "channel": ""},
                          {"action": "recharge", "after_seconds": 86400}],
        "lost_or_stolen": [{"action": "message", "after_seconds": 0, "channel": "email"}],
    },
    "recovery_window_days": 30,
    "channels": ["email", "sms"],
    "quiet_hours_start": "21:00",
    "quiet_hours_end": "08:00",
    "payday_alignment": True,
    "payday_days": [1, 15],
}


@extend_schema_view(
    get=extend_schema(operation_id="retry_policies_list", summary="List retry policies", tags=["retry policies"]),
    post=extend_schema(
        operation_id="retry_policies_create", summary="Create a retry policy", tags=["retry policies"],
        examples=[OpenApiExample("Subscriptions", value=POLICY_EXAMPLE, request_only=True)],
    ),
)
class RetryPolicyListView(generics.ListCreateAPIView):
    serializer_class = s.RetryPolicySerializer
    pagination_class = None

    def get_queryset(self):
        return RetryPolicy.objects.filter(organization=self.request.auth.organization).order_by("-is_default", "name")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "organization": self.request.auth.organization}

    def perform_create(self, serializer):
        services.save_policy(serializer=serializer, organization=self.request.auth.organization, request=self.request)


@extend_schema_view(
    get=extend_schema(operation_id="retry_policies_retrieve", summary="A retry policy", tags=["retry policies"]),
    patch=extend_schema(operation_id="retry_policies_update", summary="Change a retry policy", tags=["retry policies"]),
    delete=extend_schema(
        operation_id="retry_policies_destroy", summary="Delete a retry policy",
        description="The default policy cannot be deleted (409); payments that used a deleted policy move to the default.",
        responses={
            204: None,
            409: _error_response(
                "The default policy.",
                default=("conflict", "The default policy cannot be deleted; make another policy the default first."),
            ),
        },
        tags=["retry policies"],
    ),
)
class RetryPolicyDetailView(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = s.RetryPolicySerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return RetryPolicy.objects.filter(organization=self.request.auth.organization)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "organization": self.request.auth.organization}

    def perform_update(self, serializer):
        services.save_policy(serializer=serializer, organization=self.request.auth.organization, request=self.request)

    def perform_destroy(self, instance):
        try:
            services.delete_policy(policy=instance, request=self.request)
        except services.RecoveryError as error:
            raise RecoveryConflict(error.message, code=error.code) from None
