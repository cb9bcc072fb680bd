"""The PSP adapter layer's records: connected accounts, the webhook inbox, what PSPs said, the sandbox's ledger.

Customers and payments belong to the recovery core (recovery/models.py); these
rows point at them, never the reverse. Amounts are integers in minor units with
an ISO 4217 currency; never floats.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from recovery.models import Payment
from tinko.models import Organization


class Provider(models.TextChoices):
    STRIPE = "stripe", _("Stripe")
    RAZORPAY = "razorpay", _("Razorpay")
    SANDBOX = "sandbox", _("Sandbox")
    OTHER = "other", _("Other")


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
    PROCESSING = "processing", _("Processing")
    RETRYING = "retrying", _("Retrying")
    REJECTED = "rejected", _("Rejected")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    DUPLICATE = "duplicate", _("Duplicate")
    FAILED = "failed", _("Failed")


class WebhookMessage(models.Model):
    """One request to a PSP webhook URL, stored before it is answered and processed later by a worker.

    A verified event is stored with ``event_id`` set and status ``received``:
    the unique (account, event_id) constraint absorbs a second delivery of the
    same event in the same INSERT (``deliveries`` counts them). A worker claims
    due rows (``next_try_at``; while ``processing`` it is the lease's end),
    applies them in order per ``ordering_key`` (the PSP object the event is
    about: customer, order, …), and records the outcome, or the error and the
    next try (``retrying``), giving up after TINKO_INBOX_MAX_TRIES (``failed``).
    A refused request (unknown account, bad signature, …) is stored ``rejected``
    with ``event_id`` empty (``received_event_id`` keeps what it carried).
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
    # Events with the same key (the PSP's customer, order, …) are applied one at a time, in arrival order.
    ordering_key = models.CharField(max_length=255, blank=True)
    # Processing: how many times a worker claimed it, and when it may be claimed (again).
    tries = models.PositiveSmallIntegerField(default=0)
    next_try_at = models.DateTimeField(null=True, blank=True)
    # Deliveries of this event the PSP made (a second one is absorbed, counted here).
    deliveries = models.PositiveIntegerField(default=1)

    PENDING = (WebhookStatus.RECEIVED, WebhookStatus.PROCESSING, WebhookStatus.RETRYING)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "event_id"], condition=~Q(event_id=""), name="webhook_unique_event_per_account"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-received_at"], name="webhook_org_received"),
            # The workers' claim: due rows among the few not finished yet.
            models.Index(fields=["next_try_at"], name="webhook_pending_due",
                         condition=Q(status__in=["received", "processing", "retrying"])),
            # Per-object order: is an earlier event of the same object still unfinished?
            models.Index(fields=["account", "ordering_key", "id"], name="webhook_pending_order",
                         condition=Q(status__in=["received", "processing", "retrying"])),
        ]

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
