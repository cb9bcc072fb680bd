"""API shapes of the recovery engine.

The failure-report request serializers describe the body for the OpenAPI
schema; validation itself is :func:`recovery.reports.parse_report` (fast enough
for a thousand items per request). ``tests/recovery/test_api_schema.py`` keeps
the two in step.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from recovery.models import (
    Action,
    AttemptKind,
    AttemptStatus,
    Category,
    Channel,
    LinkStatus,
    PaymentStatus,
    RetryPolicy,
)
from recovery import steps as policy_steps
from recovery.psp import provider_choices
from recovery.reports import MAX_AMOUNT


class ProviderField(serializers.ChoiceField):
    """A provider code: the registered providers and ``other`` (recovery.psp, from the PSP layer), read when used."""

    def __init__(self, **kwargs):
        super().__init__(choices=[], **kwargs)

    def __deepcopy__(self, memo):
        # Serializers copy their declared fields per instance: take the registry's list at that moment.
        field = super().__deepcopy__(memo)
        field.choices = provider_choices()
        return field


class FailureSerializer(serializers.Serializer):
    code = serializers.CharField(required=False, max_length=100, help_text="Stripe `code`, Razorpay `error.code`.")
    decline_code = serializers.CharField(
        required=False, max_length=100, help_text="Stripe `decline_code`, Razorpay `error.reason`."
    )
    advice_code = serializers.CharField(required=False, max_length=100, help_text="Stripe `advice_code`.")
    network_advice_code = serializers.CharField(
        required=False, max_length=10, help_text="The network's advice (Mastercard Merchant Advice Code)."
    )
    network_decline_code = serializers.CharField(
        required=False, max_length=10, help_text="The issuer's raw response code (e.g. Visa `05`, `R1`)."
    )
    message = serializers.CharField(required=False, max_length=1000, help_text="The PSP's message.")


class CustomerInSerializer(serializers.Serializer):
    id = serializers.CharField(required=False, max_length=200, help_text="Your id for the customer.")
    email = serializers.EmailField(required=False)
    phone = serializers.CharField(
        required=False, max_length=32,
        help_text="With its country code, e.g. `+14155550123` (spaces, dashes and brackets allowed); a number that "
        "is not valid for its country is refused. Stored in E.164.",
    )
    name = serializers.CharField(required=False, max_length=200)
    locale = serializers.CharField(required=False, max_length=35, help_text="e.g. `en`, `hi-IN`, `es-MX`.")
    timezone = serializers.CharField(required=False, max_length=64, help_text="IANA zone, e.g. `Asia/Kolkata`.")
    provider_customer_id = serializers.CharField(
        required=False, max_length=200,
        help_text="The PSP's id for this customer (e.g. Stripe's `cus_…`): the PSP's own reports of this customer "
        "then belong to the same Tinko customer.",
    )


class PaymentMethodSerializer(serializers.Serializer):
    brand = serializers.CharField(required=False, max_length=20, help_text="`visa`, `mastercard`, …")
    last4 = serializers.CharField(required=False, min_length=4, max_length=4)
    exp_month = serializers.IntegerField(required=False, min_value=1, max_value=12)
    exp_year = serializers.IntegerField(required=False, min_value=2000, max_value=2100)
    fingerprint = serializers.CharField(
        required=False, max_length=100, help_text="The PSP's card fingerprint: identifies one card across payments."
    )


class FailureReportSerializer(serializers.Serializer):
    event_id = serializers.CharField(
        required=False, max_length=255, help_text="Your id for this failure; a repeat is absorbed as a duplicate."
    )
    reference = serializers.CharField(max_length=200, help_text="Your payment reference; unique per organization.")
    amount = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT, help_text="In minor units (cents, paise).")
    currency = serializers.CharField(min_length=3, max_length=3, help_text="ISO 4217, e.g. `USD`, `INR`.")
    provider = ProviderField()
    provider_payment_id = serializers.CharField(required=False, max_length=200)
    occurred_at = serializers.DateTimeField(
        required=False, help_text="When it failed (default: now); at most 5 minutes in the future."
    )
    description = serializers.CharField(required=False, max_length=500, help_text="What was bought.")
    failure = FailureSerializer(help_text="At least one field must be present.")
    customer = CustomerInSerializer(required=False)
    payment_method = PaymentMethodSerializer(required=False)
    metadata = serializers.DictField(required=False, help_text="Up to 50 keys and 4 KB of JSON.")


class BatchRequestSerializer(serializers.Serializer):
    events = FailureReportSerializer(many=True, help_text="1 to 1,000 failure reports.")


class PaymentSummarySerializer(serializers.Serializer):
    reference = serializers.CharField()
    status = serializers.ChoiceField(choices=PaymentStatus.choices)
    amount = serializers.IntegerField()
    currency = serializers.CharField()


class ClassificationSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=Category.choices)
    retryable = serializers.BooleanField()
    action = serializers.ChoiceField(choices=Action.choices)
    reason = serializers.CharField()


class NextAttemptSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=AttemptKind.choices)
    channel = serializers.ChoiceField(choices=Channel.choices)
    scheduled_for = serializers.DateTimeField()
    reason = serializers.CharField()


class IngestResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The failure event's id.")
    duplicate = serializers.BooleanField()
    payment = PaymentSummarySerializer()
    classification = ClassificationSerializer()
    next_attempt = NextAttemptSerializer(allow_null=True)


class BatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="201 recorded, 200 duplicate, 400 invalid.")
    id = serializers.IntegerField(required=False)
    duplicate = serializers.BooleanField(required=False)
    payment = PaymentSummarySerializer(required=False)
    classification = ClassificationSerializer(required=False)
    next_attempt = NextAttemptSerializer(required=False, allow_null=True)
    error = serializers.DictField(required=False, help_text="For status 400: type, message and fields.")


class BatchResponseSerializer(serializers.Serializer):
    results = BatchItemSerializer(many=True)


def ingest_result_data(result) -> dict:
    """The response body for one recorded (or duplicate) report. Plain dicts: batch answers a thousand."""
    event, payment, attempt = result.event, result.payment, result.next_attempt
    return {
        "id": event.pk,
        "duplicate": result.duplicate,
        "payment": {
            "reference": payment.reference, "status": payment.status, "amount": payment.amount,
            "currency": payment.currency,
        },
        "classification": {
            "category": event.category, "retryable": event.action == Action.AUTO_RETRY, "action": event.action,
            "reason": event.reason,
        },
        "next_attempt": attempt_summary(attempt),
    }


_DATETIME = serializers.DateTimeField()  # one for every answer: a batch formats a thousand


def attempt_summary(attempt) -> dict | None:
    if attempt is None:
        return None
    return {
        "kind": attempt.kind, "channel": attempt.channel,
        "scheduled_for": _DATETIME.to_representation(attempt.scheduled_for),
        "reason": attempt.reason,
    }


class CustomerOutSerializer(serializers.Serializer):
    id = serializers.CharField(source="external_id")
    email = serializers.EmailField()
    name = serializers.CharField()
    locale = serializers.CharField()
    timezone = serializers.CharField()


class PaymentSerializer(serializers.Serializer):
    reference = serializers.CharField()
    status = serializers.ChoiceField(choices=PaymentStatus.choices)
    status_reason = serializers.CharField()
    category = serializers.CharField(help_text="The latest failure's category.")
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    provider = ProviderField()
    provider_payment_id = serializers.CharField()
    description = serializers.CharField()
    customer = CustomerOutSerializer(allow_null=True)
    card_brand = serializers.CharField()
    card_last4 = serializers.CharField()
    failure_count = serializers.IntegerField()
    first_failed_at = serializers.DateTimeField()
    last_failed_at = serializers.DateTimeField()
    recovery_ends_at = serializers.DateTimeField(allow_null=True)
    recovered_at = serializers.DateTimeField(allow_null=True)
    recovered_amount = serializers.IntegerField(allow_null=True)
    recovered_channel = serializers.CharField()
    holdout_group = serializers.CharField(help_text=(
        "`holdout`: held out of recovery by the retry policy's incrementality experiment (no actions); "
        "`treatment`: in the experiment and recovered by Tinko; empty: no experiment was running."
    ))
    created_at = serializers.DateTimeField()


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    external_id = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    code = serializers.CharField()
    decline_code = serializers.CharField()
    advice_code = serializers.CharField()
    network_advice_code = serializers.CharField()
    network_decline_code = serializers.CharField()
    message = serializers.CharField()
    classification = serializers.SerializerMethodField()

    def get_classification(self, event) -> ClassificationSerializer:
        return {
            "category": event.category, "retryable": event.retryable, "action": event.action, "reason": event.reason,
        }


class AttemptSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=AttemptKind.choices)
    channel = serializers.ChoiceField(choices=Channel.choices)
    message_kind = serializers.CharField()
    status = serializers.ChoiceField(choices=AttemptStatus.choices)
    scheduled_for = serializers.DateTimeField()
    reason = serializers.CharField(help_text="Why it was scheduled when it was.")
    outcome = serializers.CharField(help_text="What happened when it ran.")
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class LinkSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=LinkStatus.choices)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    open_count = serializers.IntegerField()
    first_opened_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)


class PaymentDetailSerializer(PaymentSerializer):
    events = EventSerializer(many=True, source="failure_events.all")
    attempts = AttemptSerializer(many=True, source="attempts.all")
    links = LinkSerializer(many=True, source="links.all")


class NewLinkSerializer(LinkSerializer):
    url = serializers.CharField(help_text="The pay page's address. Shown once: only its hash is stored.")


class PaymentFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=PaymentStatus.choices, required=False)
    category = serializers.ChoiceField(choices=Category.choices, required=False)
    provider = ProviderField(required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


CHANNEL_CHOICES = [c for c in Channel.values if c != Channel.PSP]


@extend_schema_field({
    "type": "string", "nullable": True, "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
    "example": "21:00",
})
class ClockTimeField(serializers.TimeField):
    """A time of day without a zone ("21:00" or "21:00:00"), in the customer's own time zone.

    OpenAPI's ``format: time`` is RFC 3339's full-time, which requires an offset;
    these times have none, so the schema states the pattern instead.
    """

    def __init__(self, **kwargs):
        super().__init__(input_formats=["%H:%M", "%H:%M:%S"], format="%H:%M:%S", **kwargs)


_STEP_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": list(policy_steps.ACTIONS),
                   "description": "`recharge`: an automatic off-session re-charge; `message`: a message with the pay link."},
        "after_seconds": {"type": "integer", "minimum": 0, "maximum": policy_steps.MAX_WAIT,
                          "description": "Wait after the previous step (after the failure for the first step); "
                                         f"at least {policy_steps.MIN_RECHARGE_WAIT} for a re-charge."},
        "channel": {"type": "string", "enum": ["", *policy_steps.MESSAGE_CHANNELS],
                    "description": "Messages only: empty takes the policy's channels in turn."},
    },
    "required": ["action", "after_seconds"],
    "additionalProperties": False,
}


@extend_schema_field({
    "type": "object",
    "description": (
        "Per decline category, the ordered steps Tinko takes. Keys: "
        + ", ".join(f"`{k}`" for k in policy_steps.STEP_KEYS)
        + " (`lost_or_stolen`: a card reported lost or stolen, or to be picked up; `fraud_or_stolen` is never "
        "allowed: fraud gets nothing). Re-charge steps only for "
        + ", ".join(f"`{k}`" for k in sorted(policy_steps.RECHARGE_KEYS))
        + f"; at most {policy_steps.MAX_STEPS} steps and {policy_steps.MAX_RECHARGES} re-charges per category. "
        "A category left out gets no action. When changing a policy, `steps` replaces the whole object."
    ),
    "properties": {
        key: {"type": "array", "maxItems": policy_steps.MAX_STEPS, "items": _STEP_SCHEMA}
        for key in policy_steps.STEP_KEYS
    },
    "additionalProperties": False,
    "example": {"insufficient_funds": policy_steps.DEFAULT_STEPS["insufficient_funds"],
                "lost_or_stolen": policy_steps.DEFAULT_STEPS["lost_or_stolen"]},
})
class StepsField(serializers.Field):
    """``RetryPolicy.steps`` (recovery/steps.py): checked by :func:`recovery.steps.validate_steps`."""

    default_error_messages = {"invalid": "Must be an object keyed by decline category."}

    def to_internal_value(self, data):
        errors = policy_steps.validate_steps(data)
        if errors:
            raise serializers.ValidationError(errors)
        return policy_steps.normalized(data)

    def to_representation(self, value):
        return value


class RetryPolicySerializer(serializers.ModelSerializer):
    quiet_hours_start = ClockTimeField(required=False, allow_null=True,
                                       help_text="Start of the quiet hours in the customer's time zone; null for none.")
    quiet_hours_end = ClockTimeField(required=False, allow_null=True, help_text="End of the quiet hours.")
    channels = serializers.ListField(
        child=serializers.ChoiceField(choices=CHANNEL_CHOICES), allow_empty=True, required=False, max_length=3,
        help_text="Message channels in the order they are used.",
    )
    payday_days = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=31), required=False, max_length=31,
        help_text=(
            "Days of the month when customers are paid (31 = the month's last day). Empty (the default): with "
            "payday_alignment, only customers whose own payday Tinko has learnt from their history are aligned."
        ),
    )
    steps = StepsField(required=False)

    class Meta:
        model = RetryPolicy
        fields = [
            "id", "name", "is_default", "steps", "recovery_window_days", "channels", "quiet_hours_start",
            "quiet_hours_end", "payday_alignment", "payday_days", "holdout_percent", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_channels(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each channel may appear once.")
        return value

    def validate_payday_days(self, value):
        return sorted(set(value))

    def validate_name(self, value):
        value = value.strip()
        organization = self.context["organization"]
        clash = RetryPolicy.objects.filter(organization=organization, name=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError("Another policy has this name.")
        return value

    # The settings of the old "retries, then messages" model, now expressed as ``steps``.
    RETIRED = ("max_retries", "initial_delay_seconds", "backoff_multiplier", "max_delay_seconds", "max_notifications",
               "notification_interval_seconds", "notify_on_hard_decline", "category_overrides")

    def validate(self, attrs):
        retired = [name for name in self.RETIRED if name in (self.initial_data or {})] if isinstance(
            self.initial_data, dict) else []
        if retired:
            raise serializers.ValidationError({
                name: ["Retry policies now describe their re-charges and messages as `steps`; this setting is gone."]
                for name in retired
            })
        start = attrs.get("quiet_hours_start", getattr(self.instance, "quiet_hours_start", None))
        end = attrs.get("quiet_hours_end", getattr(self.instance, "quiet_hours_end", None))
        if (start is None) != (end is None):
            raise serializers.ValidationError({"quiet_hours_end": ["Give both ends of the quiet hours, or neither."]})
        if self.instance is not None and self.instance.is_default and attrs.get("is_default") is False:
            raise serializers.ValidationError(
                {"is_default": ["Make another policy the default instead; an organization always has one."]}
            )
        return attrs


class ReportPaidSerializer(serializers.Serializer):
    amount = serializers.IntegerField(
        required=False, min_value=1,
        help_text="Amount paid in minor units; the payment's whole amount when left out.",
    )
