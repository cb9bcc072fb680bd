"""The recovery core's records: customers and the payments Tinko recovers, failure events, their
classification, retry policies, attempts and recovery links.

Customer and Payment keep the tables they were created with (payments_customer,
payments_payment) from before they moved here from the payments app.
Amounts are integers in minor units with an ISO 4217 currency; never floats.
"""

from __future__ import annotations

import secrets
from datetime import time, timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from recovery import psp
from recovery.steps import default_steps
from tinko import phones
from tinko.models import Organization, hash_token, validate_currency, validate_timezone




class Channel(models.TextChoices):
    PSP = "psp", _("Automatic re-charge")
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    WHATSAPP = "whatsapp", _("WhatsApp")


class Customer(models.Model):
    """A merchant's customer, as the merchant (or its PSP) described them.

    ``key`` is how reports find the same customer again: the merchant's id when
    given, else the e-mail address, else the phone number.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="customers")
    key = models.CharField(max_length=260, editable=False)
    external_id = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=16, blank=True, validators=[phones.validate_e164])
    name = models.CharField(max_length=200, blank=True)
    locale = models.CharField(max_length=35, blank=True)
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])
    # Channels the customer asked not to be contacted on ("email", "sms", "whatsapp").
    opted_out_channels = models.JSONField(default=list, blank=True)
    # The PSP's id for the customer (Stripe's cus_…): the PSP's reports under it belong to this customer.
    provider_customer_id = models.CharField(max_length=200, blank=True)
    # When Tinko last read the customer's contact details from the PSP's customer object (read once, then kept here).
    provider_fetched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        db_table = "payments_customer"
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="customer_unique_key_per_org")]
        indexes = [
            models.Index(fields=["organization", "provider_customer_id"], name="customer_org_psp_id",
                         condition=~Q(provider_customer_id="")),
            # The console's search by e-mail address, case-insensitive (payments/selectors.py).
            models.Index(models.F("organization"), Lower("email"), name="customer_org_email_lower"),
            # The Customers list: newest first, keyset pagination on (created_at, id); search by a name's beginning.
            models.Index(fields=["organization", "-created_at", "-id"], name="customer_org_created"),
            # And customer_org_name_prefix, (organization, lower(name) COLLATE "C") for a name's beginning:
            # created by payments migration 0007 on PostgreSQL only (SQLite has no "C" collation).
        ]

    def __str__(self):
        return self.name or self.email or self.external_id or self.phone or f"Customer {self.pk}"


class PaymentStatus(models.TextChoices):
    FAILED = "failed", _("Failed")
    RECOVERING = "recovering", _("Recovering")
    RECOVERED = "recovered", _("Recovered")
    EXHAUSTED = "exhausted", _("Exhausted")
    CANCELLED = "cancelled", _("Cancelled")


class NetworkLimit(models.TextChoices):
    """A card network's limit on automatic re-charges (recovery/planner.py applies them): the code of one that refused or moved a re-charge."""

    VISA_15_30D = "visa_15_30d", _("At most 15 automatic re-charges per card and amount in 30 days (Visa rule)")
    MASTERCARD_10_24H = "mastercard_10_24h", _("At most 10 automatic attempts per card in 24 hours (Mastercard)")


class HoldoutGroup(models.TextChoices):
    TREATMENT = "treatment", _("Recovered by Tinko")
    HOLDOUT = "holdout", _("Held out (no recovery actions)")


class Payment(models.Model):
    """The payment being recovered: ``failed → recovering → recovered | exhausted | cancelled``."""

    TERMINAL = {PaymentStatus.RECOVERED, PaymentStatus.CANCELLED}
    OPEN = {PaymentStatus.FAILED, PaymentStatus.RECOVERING}

    # Indexed by the (organization, reference) constraint and the list indexes.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="payments", db_index=False)
    reference = models.CharField(max_length=200)
    # A registered provider's name or "other" (recovery.psp.provider_names; checked at ingestion).
    provider = models.CharField(max_length=10)
    provider_payment_id = models.CharField(max_length=200, blank=True)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="payments")
    amount = models.BigIntegerField(validators=[MinValueValidator(1)])
    currency = models.CharField(max_length=3, validators=[validate_currency])
    description = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    card_fingerprint = models.CharField(max_length=100, blank=True)
    # The connected PSP account that reported the payment, and what it needs for
    # an off-session re-charge (Stripe customer + payment method; Razorpay customer + token).
    provider_account = models.ForeignKey(
        "payments.ProviderAccount", null=True, blank=True, on_delete=models.SET_NULL, related_name="payments"
    )
    provider_customer_id = models.CharField(max_length=200, blank=True)
    provider_payment_method_id = models.CharField(max_length=200, blank=True)
    # The PSP's own next automatic attempt (Stripe's invoice.next_payment_attempt): it counts against the
    # card-network limits, and Tinko plans no re-charge of its own within 24 hours of it.
    provider_retry_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=10, choices=PaymentStatus.choices, default=PaymentStatus.FAILED)
    # The latest failure's category: what the recovery is currently working around.
    category = models.CharField(max_length=30, blank=True)
    status_reason = models.TextField(blank=True)
    # The card-network limit that last refused or moved a planned re-charge ('' if none ever did):
    # what the compliance figures count. It stays when a later plan's reason no longer tells of it.
    limit_code = models.CharField(max_length=20, choices=NetworkLimit.choices, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    # The policy's recovery window, counted from the first failure.
    recovery_ends_at = models.DateTimeField(null=True, blank=True)
    policy = models.ForeignKey(
        "RetryPolicy", null=True, blank=True, on_delete=models.SET_NULL, related_name="payments"
    )

    recovered_at = models.DateTimeField(null=True, blank=True)
    recovered_amount = models.BigIntegerField(null=True, blank=True)
    # Attribution: which attempt (and so which channel) brought the money back.
    recovered_attempt = models.ForeignKey(
        "RecoveryAttempt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    recovered_channel = models.CharField(max_length=10, choices=Channel.choices, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Incrementality experiment: drawn once, when the payment is first reported, from the
    # policy's holdout percentage; blank when no experiment was running (recovery/holdout.py).
    holdout_group = models.CharField(max_length=10, choices=HoldoutGroup.choices, blank=True)

    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        db_table = "payments_payment"
        constraints = [
            models.UniqueConstraint(fields=["organization", "reference"], name="payment_unique_reference_per_org"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
        ]
        indexes = [
            # The payments list: newest first, optionally by status; keyset pagination on (created_at, id).
            models.Index(fields=["organization", "-created_at", "-id"], name="payment_org_created"),
            models.Index(fields=["organization", "status", "-created_at"], name="payment_org_status_created"),
            models.Index(fields=["organization", "category", "-created_at"], name="payment_org_category_created"),
            # Console filters and search (payments/selectors.py): provider, recovered channel, last4, reference prefix.
            models.Index(fields=["organization", "provider", "-created_at"], name="payment_org_provider_created"),
            models.Index(
                fields=["organization", "recovered_channel", "-created_at"], name="payment_org_channel_created",
                condition=~Q(recovered_channel=""),
            ),
            models.Index(fields=["organization", "card_last4"], name="payment_org_last4"),
            models.Index(
                fields=["organization", "reference"], name="payment_org_reference_prefix",
                opclasses=["int8_ops", "varchar_pattern_ops"],
            ),
            # Analytics: a period's payments by failure time, and what changed since the rollups' last refresh.
            models.Index(fields=["organization", "first_failed_at"], name="payment_org_first_failed"),
            models.Index(fields=["organization", "updated_at"], name="payment_org_updated"),
            # Expiry sweep: open recoveries whose window has ended.
            models.Index(
                fields=["recovery_ends_at"], name="payment_open_window", condition=Q(status__in=["failed", "recovering"])
            ),
        ]

    def __str__(self):
        return f"{self.reference} ({self.amount} {self.currency})"

    @property
    def provider_label(self) -> str:
        """The provider's name for people: the built-ins translated, others as their package registered them."""
        return psp.provider_label(self.provider)

    @property
    def card_key(self) -> str:
        """One physical card, for the card networks' per-card retry limits."""
        if self.card_fingerprint:
            return f"fp:{self.card_fingerprint}"
        if self.card_last4:
            return f"card:{self.card_brand.lower()}:{self.card_last4}:{self.card_exp_month or ''}/{self.card_exp_year or ''}"
        return ""


class Category(models.TextChoices):
    INSUFFICIENT_FUNDS = "insufficient_funds", _("Insufficient funds")
    CARD_DECLINED = "card_declined", _("Card declined")
    AUTHENTICATION_REQUIRED = "authentication_required", _("Authentication required")
    EXPIRED_CARD = "expired_card", _("Expired card")
    INVALID_CARD = "invalid_card", _("Invalid card details")
    PROCESSING_ERROR = "processing_error", _("Processing error")
    NETWORK_ERROR = "network_error", _("Network error")
    FRAUD_OR_STOLEN = "fraud_or_stolen", _("Fraud, lost or stolen")
    DO_NOT_RETRY = "do_not_retry", _("Do not retry")
    UNKNOWN = "unknown", _("Unknown")


class Action(models.TextChoices):
    AUTO_RETRY = "auto_retry", _("Automatic re-charge")
    CUSTOMER_ACTION = "customer_action", _("Customer action")
    STOP = "stop", _("Stop")


class RuleField(models.TextChoices):
    """Which part of a failure report a rule looks at."""

    DECLINE_CODE = "decline_code", _("Decline code (Stripe decline_code, Razorpay error.reason)")
    CODE = "code", _("Error code (Stripe code, Razorpay error.code)")
    VISA_CODE = "visa_code", _("Visa raw response code (network_decline_code)")
    MASTERCARD_ADVICE = "mastercard_advice", _("Mastercard Merchant Advice Code (network_advice_code)")
    MESSAGE = "message", _("Message pattern (regular expression, case-insensitive)")


class ClassificationRule(models.Model):
    """One row of the decline classifier.

    Rows without an organization are Tinko's defaults (shipped by a data
    migration, editable by staff); a row with an organization overrides the
    default with the same provider, field and value for that organization only.
    """

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="classification_rules"
    )
    # Blank: any provider (network codes and message patterns).
    provider = models.CharField(max_length=10, blank=True)
    field = models.CharField(max_length=20, choices=RuleField.choices)
    value = models.CharField(max_length=300, help_text="The code, or for message rules a regular expression.")
    # Message patterns are tried in ascending priority; codes match exactly.
    priority = models.PositiveSmallIntegerField(default=100)
    category = models.CharField(max_length=30, choices=Category.choices)
    action = models.CharField(max_length=20, choices=Action.choices)
    min_delay_seconds = models.PositiveIntegerField(default=0, help_text="Earliest automatic retry after this failure.")
    # The card network forbids any reattempt (Visa category 1, Mastercard MAC 03/21).
    network_stop = models.BooleanField(default=False)
    description = models.CharField(max_length=300, help_text="Plain-language meaning, used in the reason.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "field", "value"],
                condition=Q(organization__isnull=True),
                name="rule_unique_default",
            ),
            models.UniqueConstraint(
                fields=["organization", "provider", "field", "value"],
                condition=Q(organization__isnull=False),
                name="rule_unique_per_org",
            ),
        ]
        ordering = ["field", "provider", "priority", "value"]

    def __str__(self):
        scope = self.organization.slug if self.organization_id else "default"
        return f"{scope}: {self.provider or 'any'} {self.field}={self.value} → {self.category}"

    @property
    def retryable(self) -> bool:
        return self.action == Action.AUTO_RETRY


def default_channels():
    return [Channel.EMAIL, Channel.SMS, Channel.WHATSAPP]


def default_paydays():
    # No merchant-wide paydays: with payday alignment on, only customers whose own history shows
    # their payday (recovery/payday.py) are re-charged on it. A list such as [1, 15] would move
    # everyone else's re-charges too, and most people are paid weekly or fortnightly.
    return []


class RetryPolicy(models.Model):
    """How an organization wants its failed payments recovered. One per org is the default.

    ``steps`` says what happens per decline category; the other fields are shared by
    every category (channels in order, quiet hours, paydays, the window, the holdout).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="retry_policies")
    name = models.CharField(max_length=80)
    is_default = models.BooleanField(default=False)
    # Per decline category, the ordered re-charges and messages (recovery/steps.py documents the shape).
    steps = models.JSONField(default=default_steps, blank=True)
    recovery_window_days = models.PositiveSmallIntegerField(
        default=28, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )
    channels = models.JSONField(default=default_channels, blank=True)
    quiet_hours_start = models.TimeField(null=True, blank=True, default=time(21, 0))
    quiet_hours_end = models.TimeField(null=True, blank=True, default=time(8, 0))
    payday_alignment = models.BooleanField(default=True)
    payday_days = models.JSONField(default=default_paydays, blank=True)
    # Share of new failed payments (chosen at random) that get no recovery actions, to measure what
    # Tinko adds over doing nothing. Payments record their group (Payment.holdout_group).
    holdout_percent = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(50)])
    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], condition=Q(is_default=True), name="retry_policy_one_default_per_org"
            ),
            models.UniqueConstraint(fields=["organization", "name"], name="retry_policy_unique_name_per_org"),
        ]
        verbose_name_plural = "retry policies"

    def __str__(self):
        return self.name


class FailureSource(models.TextChoices):
    API = "api", _("Merchant API")
    STRIPE = "stripe", _("Stripe webhook")
    RAZORPAY = "razorpay", _("Razorpay webhook")
    SANDBOX = "sandbox", _("Sandbox")
    ATTEMPT = "attempt", _("Tinko re-charge")


class FailureEvent(models.Model):
    """One report that a payment failed, and how Tinko classified it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="failure_events")
    # Indexed by failure_event_payment (payment, occurred_at).
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="failure_events", db_index=False)
    source = models.CharField(max_length=10, choices=FailureSource.choices)
    # The sender's event id: duplicates are absorbed by the unique constraint.
    external_id = models.CharField(max_length=255, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=now, editable=False)
    code = models.CharField(max_length=100, blank=True)
    decline_code = models.CharField(max_length=100, blank=True)
    advice_code = models.CharField(max_length=100, blank=True)
    network_advice_code = models.CharField(max_length=10, blank=True)
    network_decline_code = models.CharField(max_length=10, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    # Classification
    category = models.CharField(max_length=30, choices=Category.choices)
    action = models.CharField(max_length=20, choices=Action.choices)
    min_delay_seconds = models.PositiveIntegerField(default=0)
    network_stop = models.BooleanField(default=False)
    reason = models.TextField()
    rule = models.ForeignKey(ClassificationRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Set when the failure is the outcome of Tinko's own re-charge.
    attempt = models.ForeignKey(
        "recovery.RecoveryAttempt", null=True, blank=True, on_delete=models.SET_NULL, related_name="failure_events"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "source", "external_id"],
                condition=~Q(external_id=""),
                name="failure_event_unique_external_id",
            ),
        ]
        indexes = [models.Index(fields=["payment", "occurred_at"], name="failure_event_payment")]

    def __str__(self):
        return f"{self.source} {self.category} for payment {self.payment_id}"

    @property
    def retryable(self) -> bool:
        return self.action == Action.AUTO_RETRY

    @property
    def min_delay(self) -> timedelta:
        return timedelta(seconds=self.min_delay_seconds)


class AttemptKind(models.TextChoices):
    AUTO_RETRY = "auto_retry", _("Automatic re-charge")
    NOTIFICATION = "notification", _("Notification")


class AttemptStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")
    CANCELLED = "cancelled", _("Cancelled")


class MessageKind(models.TextChoices):
    FIRST_NOTICE = "first_notice", _("First notice")
    REMINDER = "reminder", _("Reminder")
    FINAL_NOTICE = "final_notice", _("Final notice")
    AUTHENTICATION_NEEDED = "authentication_needed", _("Authentication needed")
    CARD_EXPIRING = "card_expiring", _("Card expiring")


def new_idempotency_key() -> str:
    return f"tinko_att_{secrets.token_hex(16)}"


class RecoveryAttempt(models.Model):
    """One planned step of a recovery: an automatic re-charge or a message to the customer.

    ``scheduled → queued → running → succeeded | failed | skipped | cancelled``.
    ``idempotency_key`` is fixed at planning time and passed to the PSP, so a
    re-run after a crash can never charge twice.
    """

    ACTIVE = (AttemptStatus.SCHEDULED, AttemptStatus.QUEUED, AttemptStatus.RUNNING)
    # A counted attempt happened or will happen: cancelled and skipped ones never reached the card
    # or the customer. The card networks' limits, the policy's step counts and the compliance
    # figures count the others. UNCOUNTED is for plain SQL; COUNTED filters a queryset.
    UNCOUNTED = (AttemptStatus.CANCELLED, AttemptStatus.SKIPPED)
    COUNTED = ~Q(status__in=UNCOUNTED)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # Indexed by the (payment, sequence) constraint. Every extra index on this
    # table is written on each of an attempt's status changes (they cannot be HOT).
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    sequence = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=12, choices=AttemptKind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    message_kind = models.CharField(max_length=24, choices=MessageKind.choices, blank=True)
    status = models.CharField(max_length=10, choices=AttemptStatus.choices, default=AttemptStatus.SCHEDULED)
    scheduled_for = models.DateTimeField()
    reason = models.TextField()
    # The card-network limit the reason tells of: one that moved this re-charge, or that refused the
    # re-charge a message stands in for. Code that counts reads this, never the reason.
    limit_code = models.CharField(max_length=20, choices=NetworkLimit.choices, blank=True)
    idempotency_key = models.CharField(max_length=64, unique=True, default=new_idempotency_key, editable=False)
    # What the card networks count: the card, and the amount and currency charged.
    card_key = models.CharField(max_length=140, blank=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    # Every claim by the scheduler (due, re-claimed after a failed enqueue or an expired lease).
    claims = models.PositiveSmallIntegerField(default=0)
    # Runs that reached the PSP with the idempotency key: what the lost-answer budget counts, so that
    # an outage of the broker or dead workers (which only add claims) never use it up.
    psp_calls = models.PositiveSmallIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    link = models.ForeignKey(
        "recovery.RecoveryLink", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payment", "sequence"], name="attempt_unique_sequence"),
        ]
        indexes = [
            # The scheduler's two claims; partial, so a million future attempts cost nothing per tick.
            models.Index(fields=["scheduled_for"], name="attempt_due", condition=Q(status="scheduled")),
            models.Index(
                fields=["lease_expires_at"], name="attempt_leased", condition=Q(status__in=["queued", "running"])
            ),
            # Card-network limits: automatic reattempts per card in a time range.
            models.Index(
                fields=["organization", "card_key", "scheduled_for"],
                name="attempt_card_history",
                condition=Q(kind="auto_retry"),
            ),
        ]
        ordering = ["payment", "sequence"]

    def __str__(self):
        return f"{self.kind} #{self.sequence} for payment {self.payment_id} ({self.status})"


class LinkStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    OPENED = "opened", _("Opened")
    COMPLETED = "completed", _("Completed")
    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")


class RecoveryLink(models.Model):
    """A link to the hosted pay page: one live link per payment, reused by every message.

    Lookups go by the token's hash; the token itself is kept only encrypted at
    rest (``token_encrypted``, tinko/crypto.py), so that the next message can
    carry the same link and extend its expiry instead of revoking it.
    """

    LIVE = (LinkStatus.ACTIVE, LinkStatus.OPENED)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The token, encrypted: messages reuse the link. Blank for links made before links were reused.
    token_encrypted = models.TextField(blank=True, editable=False)
    status = models.CharField(max_length=10, choices=LinkStatus.choices, default=LinkStatus.ACTIVE)
    expires_at = models.DateTimeField()
    open_count = models.PositiveIntegerField(default=0)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["expires_at"], name="link_live_expiry", condition=Q(status__in=["active", "opened"])),
        ]

    def __str__(self):
        return f"link {self.pk} for payment {self.payment_id} ({self.status})"

    @staticmethod
    def new_token() -> tuple[str, str]:
        """(token, hash): 256 bits of randomness; the token is shown once, the hash kept."""
        token = secrets.token_urlsafe(32)
        return token, hash_token(token)
