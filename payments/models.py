"""Customers and the payments Tinko recovers.

Amounts are integers in minor units with an ISO 4217 currency; never floats.
"""

from __future__ import annotations

import secrets

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from tinko.models import Organization, validate_currency, validate_timezone

e164_validator = RegexValidator(r"^\+[1-9]\d{6,14}$", "Enter a phone number in E.164 form, e.g. +14155550123.")


class Provider(models.TextChoices):
    STRIPE = "stripe", _("Stripe")
    RAZORPAY = "razorpay", _("Razorpay")
    SANDBOX = "sandbox", _("Sandbox")
    OTHER = "other", _("Other")


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
    phone = models.CharField(max_length=16, blank=True, validators=[e164_validator])
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
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="customer_unique_key_per_org")]
        indexes = [
            models.Index(fields=["organization", "provider_customer_id"], name="customer_org_psp_id",
                         condition=~Q(provider_customer_id="")),
            # The console's search by e-mail address, case-insensitive (payments/selectors.py).
            models.Index(models.F("organization"), Lower("email"), name="customer_org_email_lower"),
            # The Customers list: newest first, keyset pagination on (created_at, id); search by a name's beginning.
            models.Index(fields=["organization", "-created_at", "-id"], name="customer_org_created"),
            # And customer_org_name_prefix, (organization, lower(name) COLLATE "C") for a name's beginning:
            # created by migration 0007 on PostgreSQL only (SQLite has no "C" collation).
        ]

    def __str__(self):
        return self.name or self.email or self.external_id or self.phone or f"Customer {self.pk}"


class PaymentStatus(models.TextChoices):
    FAILED = "failed", _("Failed")
    RECOVERING = "recovering", _("Recovering")
    RECOVERED = "recovered", _("Recovered")
    EXHAUSTED = "exhausted", _("Exhausted")
    CANCELLED = "cancelled", _("Cancelled")


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
    # A registered provider's name or "other" (payments/providers.py provider_names; checked at ingestion).
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
    failure_count = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    # The policy's recovery window, counted from the first failure.
    recovery_ends_at = models.DateTimeField(null=True, blank=True)
    policy = models.ForeignKey(
        "recovery.RetryPolicy", null=True, blank=True, on_delete=models.SET_NULL, related_name="payments"
    )

    recovered_at = models.DateTimeField(null=True, blank=True)
    recovered_amount = models.BigIntegerField(null=True, blank=True)
    # Attribution: which attempt (and so which channel) brought the money back.
    recovered_attempt = models.ForeignKey(
        "recovery.RecoveryAttempt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    recovered_channel = models.CharField(max_length=10, choices=Channel.choices, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Incrementality experiment: drawn once, when the payment is first reported, from the
    # policy's holdout percentage; blank when no experiment was running (recovery/holdout.py).
    holdout_group = models.CharField(max_length=10, choices=HoldoutGroup.choices, blank=True)

    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
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
        try:
            return Provider(self.provider).label
        except ValueError:
            from payments.providers import provider_label

            return provider_label(self.provider)

    @property
    def card_key(self) -> str:
        """One physical card, for the card networks' per-card retry limits."""
        if self.card_fingerprint:
            return f"fp:{self.card_fingerprint}"
        if self.card_last4:
            return f"card:{self.card_brand.lower()}:{self.card_last4}:{self.card_exp_month or ''}/{self.card_exp_year or ''}"
        return ""


class SandboxChargeStatus(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    DECLINED = "declined", _("Declined")


class SandboxCharge(models.Model):
    """A charge made through the built-in sandbox PSP (payments/sandbox/).

    The sandbox keeps its ledger in our database so that local mode and tests
    can see exactly how many times money moved; ``idempotency_key`` is unique,
    as at a real PSP, so a repeated request returns the first result.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="sandbox_charges")
    idempotency_key = models.CharField(max_length=255, unique=True)
    charge_id = models.CharField(max_length=40, unique=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    card_last4 = models.CharField(max_length=4, blank=True)
    off_session = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=SandboxChargeStatus.choices)
    code = models.CharField(max_length=60, blank=True)
    decline_code = models.CharField(max_length=60, blank=True)
    advice_code = models.CharField(max_length=60, blank=True)
    network_advice_code = models.CharField(max_length=10, blank=True)
    network_decline_code = models.CharField(max_length=10, blank=True)
    message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now, editable=False)

    def __str__(self):
        return f"{self.charge_id} {self.status}"


# --- Connected PSP accounts, their webhooks, what they said ---------------------


def _public_id() -> str:
    return secrets.token_urlsafe(16)


class AccountMode(models.TextChoices):
    TEST = "test", _("Test")
    LIVE = "live", _("Live")


class ProviderAccount(models.Model):
    """An organization's connection to its own Stripe or Razorpay account.

    Secrets live in ``credentials`` (a JSON object), each value encrypted with
    tinko.crypto (Stripe: ``secret_key``, ``webhook_secret``; Razorpay:
    ``key_secret``, ``webhook_secret``). They are written once and never shown
    again: pages and admin show ``key_hint`` only. The webhook URL is
    ``/webhooks/<provider>/<public_id>/``.
    """

    ENCRYPTED_KEYS = ("secret_key", "key_secret", "webhook_secret")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="provider_accounts")
    provider = models.CharField(max_length=10, choices=[(Provider.STRIPE, "Stripe"), (Provider.RAZORPAY, "Razorpay")])
    name = models.CharField(max_length=100)
    public_id = models.CharField(max_length=32, unique=True, default=_public_id, editable=False)
    mode = models.CharField(max_length=4, choices=AccountMode.choices)
    # Razorpay's key id is an identifier, not a secret (it travels with every request).
    key_id = models.CharField(max_length=100, blank=True)
    # e.g. "sk_test_…4242": enough to recognise a key, useless to an attacker.
    key_hint = models.CharField(max_length=40, blank=True)
    credentials = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_detail = models.CharField(max_length=300, blank=True)
    # Set when the PSP refused the stored key during a re-charge (HTTP 401): no re-charge goes
    # through the account until a successful connection test or new keys clear it. Webhooks still arrive.
    recharges_paused_at = models.DateTimeField(null=True, blank=True)
    recharges_paused_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="provider_account_unique_name"),
        ]

    def __str__(self):
        return f"{self.get_provider_display()} · {self.name} ({self.mode})"

    def secret(self, key: str) -> str:
        """The decrypted secret ``key`` ("" when not set). Never log or display it."""
        from tinko import crypto

        token = (self.credentials or {}).get(key)
        return crypto.decrypt(token) if token else ""

    def set_secret(self, key: str, value: str) -> None:
        from tinko import crypto

        if key not in self.ENCRYPTED_KEYS:
            raise ValueError(f"{key} is not a secret of a provider account")
        self.credentials = {**(self.credentials or {}), key: crypto.encrypt(value)}

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.provider}/{self.public_id}/"


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    REJECTED = "rejected", _("Rejected")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    DUPLICATE = "duplicate", _("Duplicate")
    FAILED = "failed", _("Failed")


class WebhookMessage(models.Model):
    """One request to a PSP webhook URL, stored before anything else happens to it.

    ``event_id`` is claimed (set) only by the delivery that processes the
    event, inside the processing transaction: the unique constraint absorbs
    duplicates, and a delivery whose processing failed leaves it free for the
    PSP's retry. Every other delivery keeps ``event_id`` empty and says why in
    ``status`` and ``error`` (``received_event_id`` keeps what it carried).
    """

    provider = models.CharField(max_length=10)
    # Null when the URL named no account we know (kept for audit all the same).
    account = models.ForeignKey(ProviderAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_messages")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    account_public_id = models.CharField(max_length=100, blank=True)
    headers = models.JSONField(default=dict)
    # The whole body for an active account (up to TINKO_WEBHOOK_MAX_BODY); for
    # any other request only its first TINKO_WEBHOOK_STUB_BYTES (``body_truncated``).
    body = models.TextField(blank=True)
    body_size = models.PositiveIntegerField(default=0)
    body_sha256 = models.CharField(max_length=64, blank=True)
    body_truncated = models.BooleanField(default=False)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(default=now, db_index=True)
    signature_valid = models.BooleanField(default=False)
    received_event_id = models.CharField(max_length=255, blank=True)
    event_id = models.CharField(max_length=255, blank=True)
    event_type = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    replays = models.PositiveSmallIntegerField(default=0)
    # The payment the event concerned, once processed (for the payment's timeline).
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_messages")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "event_id"], condition=~Q(event_id=""), name="webhook_unique_event_per_account"
            ),
        ]
        indexes = [models.Index(fields=["organization", "-received_at"], name="webhook_org_received")]

    def __str__(self):
        return f"{self.provider} {self.event_type or '?'} {self.received_event_id or ''} ({self.status})"


class ProviderSuccess(models.Model):
    """A PSP said (and a re-fetch confirmed) that money arrived, whether or not Tinko knew the payment yet.

    Kept so that a success delivered before its failure (webhooks arrive in any
    order) still ends the recovery when the failure comes in.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="successes")
    # Every id the PSP uses for the paid object (payment intent, invoice, order, payment, link),
    # space-separated with a space at each end, so " <id> " finds one on any database.
    references = models.TextField()
    charge_id = models.CharField(max_length=200)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    occurred_at = models.DateTimeField()
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "charge_id"], name="provider_success_unique_charge"),
        ]


class DebitStatus(models.TextChoices):
    NONE = "", _("Not asked yet")
    PENDING = "pending", _("Pending at the bank")
    CAPTURED = "captured", _("Captured")
    FAILED = "failed", _("Failed")


class RazorpayOrderClaim(models.Model):
    """One re-charge attempt's Razorpay Order, claimed in the database before Razorpay is asked.

    Razorpay takes no idempotency key, so an attempt is tied to an Order by its
    ``receipt``. Order lookup and creation happen under this row's lock (``FOR
    UPDATE NOWAIT``): of two overlapping runs of one attempt, one talks to
    Razorpay and the other gives up at once, so an attempt never gets two
    orders. The row also remembers the attempt's debit, so that while a mandate
    debit (e-mandate, NACH, UPI AutoPay) is pending at the bank no other attempt
    of the payment debits the customer again.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="+")
    receipt = models.CharField(max_length=40, unique=True)
    order_id = models.CharField(max_length=40, blank=True)
    debit_id = models.CharField(max_length=40, blank=True)
    debit_status = models.CharField(max_length=10, choices=DebitStatus.choices, blank=True)
    debit_created_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["payment"], name="rzp_claim_pending_debit", condition=models.Q(debit_status="pending")),
        ]

    def __str__(self):
        return f"Razorpay order claim {self.receipt} ({self.order_id or 'no order yet'})"


class ReconciliationCheck(models.Model):
    """What the reconciliation job found when it asked the PSP about a payment under recovery."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="reconciliation_checks")
    checked_at = models.DateTimeField(default=now)
    paid = models.BooleanField(null=True)
    recovered = models.BooleanField(default=False)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["payment", "-checked_at"], name="reconciliation_payment")]
