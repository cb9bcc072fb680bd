"""The tenancy core: users, organizations, memberships, invitations, API keys, audit."""

from __future__ import annotations

import functools
import hashlib
import secrets
import zoneinfo

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from tinko.currencies import is_currency

# --- Validators --------------------------------------------------------------

# Names end up in e-mail subjects and headers: one line, no control characters.
single_line_validator = RegexValidator(
    r"[\x00-\x1f\x7f]", _("Use a single line without control characters."), inverse_match=True
)


def validate_currency(value: str) -> None:
    # Checked against CLDR at validation time rather than stored as model
    # choices: the list changes with Babel releases, which must not mean
    # migrations, and an organization whose currency is retired stays valid.
    if not is_currency(value):
        raise ValidationError(_("%(value)s is not an ISO 4217 currency code in use (e.g. EUR)."), params={"value": value})


# --- Users -------------------------------------------------------------------


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an e-mail address (no user names)."""

    email = models.EmailField(_("e-mail address"), unique=True)
    name = models.CharField(_("name"), max_length=150, blank=True, validators=[single_line_validator])
    is_staff = models.BooleanField(_("staff status"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=now)
    # The console's language for this person; blank follows the browser (Accept-Language).
    language = models.CharField(_("language"), max_length=8, blank=True, choices=settings.LANGUAGES)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.email

    def get_full_name(self):
        return self.name or self.email

    def get_short_name(self):
        return (self.name.split() or [self.email])[0]


# --- Organizations -----------------------------------------------------------


@functools.cache
def known_timezones() -> frozenset[str]:
    # available_timezones() walks the tzdata files on every call (milliseconds);
    # ingestion validates a zone per failure report.
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in known_timezones():
        raise ValidationError(_("%(value)s is not a known time zone (e.g. Asia/Kolkata)."), params={"value": value})


TIMEZONE_CHOICES = sorted((tz, tz) for tz in known_timezones() if "/" in tz or tz == "UTC")

hex_colour_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Use a colour like #4f46e5."))


class Organization(models.Model):
    """A merchant: the unit of tenancy. Every row of merchant data belongs to one."""

    name = models.CharField(max_length=120, validators=[single_line_validator])
    slug = models.SlugField(max_length=60, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    default_currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    # Branding, shown to customers on messages and pay pages.
    display_name = models.CharField(max_length=120, blank=True, validators=[single_line_validator], help_text=_("Name customers see; defaults to the name."))
    accent_color = models.CharField(max_length=7, default="#4f46e5", validators=[hex_colour_validator])
    logo_url = models.URLField(blank=True, max_length=500)
    support_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=now, editable=False)
    # Raised by PostgreSQL triggers whenever the configuration ingestion caches changes (tinko/orgconfig.py).
    config_version = models.BigIntegerField(default=0, db_default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def brand_name(self) -> str:
        return self.display_name or self.name

    def clean(self):
        super().clean()
        if self.logo_url and not self.logo_url.startswith("https://") and not settings.DEBUG:
            raise ValidationError({"logo_url": _("The logo must be served over https://.")})


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    MEMBER = "member", _("Member")
    VIEWER = "viewer", _("Viewer")


# Higher rank may do everything a lower rank may.
ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")]
        indexes = [models.Index(fields=["organization", "role"])]
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.user} @ {self.organization} ({self.role})"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


def hash_token(token: str) -> str:
    """SHA-256 of a high-entropy token: enough for 256-bit secrets (no brute force)."""
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now())


class Invitation(models.Model):
    """An e-mailed invitation to join an organization with a role. Only the token's hash is kept."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "email"])]

    def __str__(self):
        return f"{self.email} → {self.organization} ({self.role})"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= now():
            return "expired"
        return "pending"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A secret for the REST API. The plaintext is shown once; only its SHA-256 is stored.

    Format: ``tk_<prefix>_<secret>``; ``prefix`` (8 characters) finds the row,
    the hash of the whole key authenticates it.
    """

    PREFIX_LENGTH = 8

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self):
        return f"{self.name} ({self.display_prefix}…)"

    @property
    def display_prefix(self) -> str:
        return f"tk_{self.prefix}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def generate(cls) -> tuple[str, str, str]:
        """Return (plaintext key, prefix, hash). The plaintext must not be stored."""
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        prefix = "".join(secrets.choice(alphabet) for _ in range(cls.PREFIX_LENGTH))
        plaintext = f"tk_{prefix}_{secrets.token_urlsafe(32)}"
        return plaintext, prefix, hash_token(plaintext)


class AuditEvent(models.Model):
    """Who (a user or an API key) did what to what, when, from where. Append-only."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_events")
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Kept as text so the log still reads right after the actor is deleted.
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at", "-id"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target_label}"


class PeriodicJob(models.Model):
    """When a periodic job (tinko.scheduler) is next due. One row per job name.

    Schedulers claim a due job with a conditional UPDATE on ``next_run_at``, so
    several schedulers running at once never enqueue the same run twice.
    """

    name = models.CharField(max_length=100, primary_key=True)
    next_run_at = models.DateTimeField()
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name


class OutboundEmail(models.Model):
    """An e-mail to a user (verification, password reset, invitation), kept until delivered.

    The row is written in the transaction that caused the mail; the worker gets
    only its id. Bodies carry live tokens, so they are encrypted at rest
    (tinko.crypto) and blanked once the mail is sent; a message lost by the
    broker is found here again (tinko.mail.requeue_stuck_emails).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    to = models.JSONField(help_text=_("Recipient addresses."))
    subject = models.CharField(max_length=255)
    body_encrypted = models.TextField(blank=True, editable=False)
    html_encrypted = models.TextField(blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=now, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self):
        return f"{self.subject} → {', '.join(self.to)}"


class IdempotencyRecord(models.Model):
    """The first response to an API request sent with an ``Idempotency-Key`` header.

    The row is inserted in the same transaction as the request's own writes, so
    a concurrent request with the same key waits on the unique index and then
    replays this response (or gets 409 when its body differs).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # Method, path and body: a key reused for anything else is a conflict.
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="idempotency_unique_key_per_org")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self):
        return f"{self.key} ({self.status_code})"


class ApiRequestLog(models.Model):
    """One request to the REST API by an organization's key, for Developers → Logs.

    Written by tinko.api.request_log after the response, bodies already masked
    (card numbers, keys, secrets, tokens and pay-link tokens; see that module),
    and cut to a bounded size. Kept TINKO_RETAIN_API_LOGS_DAYS (tinko/retention.py).
    Requests without a valid key are not logged here: they belong to no organization.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False)
    # Kept as text so the log still reads right after the key is deleted.
    key_name = models.CharField(max_length=120, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    duration_ms = models.PositiveIntegerField()
    request_id = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Developers → Logs: newest first (keyset), by status, by request id or Idempotency-Key.
            models.Index(fields=["organization", "-created_at", "-id"], name="api_log_org_created"),
            models.Index(fields=["organization", "status", "-created_at"], name="api_log_org_status"),
            models.Index(fields=["organization", "request_id"], name="api_log_org_request_id"),
            models.Index(fields=["organization", "idempotency_key"], name="api_log_org_idempotency",
                         condition=~models.Q(idempotency_key="")),
            # Retention deletes by age across organizations.
            models.Index(fields=["created_at"], name="api_log_created"),
        ]

    def __str__(self):
        return f"{self.method} {self.path} {self.status}"
