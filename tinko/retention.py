"""Retention: the one job that forgets what Tinko no longer needs (``apply_retention``, every hour).

Each rule names a table, its date column, the setting that says how long to keep
a row (0 keeps forever) and what happens after: the row is deleted, or some of
its fields are cleared while the row stays (an e-mail's body, an audit entry's
detail). A new table takes one line in :data:`RULES`.

Work is done in batches of :data:`BATCH_SIZE` rows by primary key, so a large
backlog never holds long locks or one huge transaction, and a pass stops after
:data:`PASS_SECONDS` (the next hour continues).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
PASS_SECONDS = 120

DAYS = timedelta(days=1)
HOURS = timedelta(hours=1)


@dataclass(frozen=True)
class Rule:
    """Rows of ``model`` whose ``date_field`` is older than ``setting`` × ``unit`` are deleted, or get ``clear``."""

    name: str
    model: str  # "app_label.ModelName"
    date_field: str
    setting: str
    unit: timedelta = DAYS
    where: Q = field(default_factory=Q)
    # Field → value to set instead of deleting the row; rows already cleared are skipped.
    clear: dict | None = None

    def keep_for(self) -> timedelta | None:
        amount = getattr(settings, self.setting)
        return amount * self.unit if amount else None

    def queryset(self, cutoff):
        qs = apps.get_model(self.model)._default_manager.filter(self.where, **{f"{self.date_field}__lt": cutoff})
        if self.clear:
            # Only rows with something left to clear.
            qs = qs.filter(~Q(**self.clear))
        return qs


_EMAIL_BODIES = {"body_encrypted": "", "html_encrypted": ""}
_MESSAGE_BODIES = {"text_encrypted": "", "html_encrypted": "", "pay_url_encrypted": ""}

RULES: list[Rule] = [
    Rule("webhook messages", "payments.WebhookMessage", "received_at", "TINKO_RETAIN_WEBHOOK_MESSAGES_DAYS"),
    Rule("unmatched provider successes", "payments.ProviderSuccess", "created_at",
         "TINKO_RETAIN_UNMATCHED_SUCCESSES_DAYS", where=Q(payment__isnull=True)),
    Rule("idempotency records", "tinko.IdempotencyRecord", "created_at", "TINKO_RETAIN_IDEMPOTENCY_HOURS", unit=HOURS),
    Rule("account e-mail bodies", "tinko.OutboundEmail", "created_at", "TINKO_RETAIN_EMAIL_BODIES_DAYS",
         where=~Q(status="queued"), clear=_EMAIL_BODIES),
    Rule("customer message bodies", "notifications.Notification", "created_at", "TINKO_RETAIN_EMAIL_BODIES_DAYS",
         where=~Q(status="queued"), clear=_MESSAGE_BODIES),
    Rule("audit detail", "tinko.AuditEvent", "created_at", "TINKO_RETAIN_AUDIT_DETAIL_DAYS", clear={"data": {}}),
    Rule("API request log", "tinko.ApiRequestLog", "created_at", "TINKO_RETAIN_API_LOGS_DAYS"),
]


def apply(*, now=None, rules: list[Rule] | None = None, batch_size: int = BATCH_SIZE,
          seconds: float = PASS_SECONDS) -> dict[str, int]:
    """One pass of every rule; returns how many rows each deleted or cleared."""
    now = now or timezone.now()
    stop_at = time.monotonic() + seconds
    done: dict[str, int] = {}
    for rule in RULES if rules is None else rules:
        keep_for = rule.keep_for()
        if keep_for is None:
            continue
        cutoff = now - keep_for
        model = apps.get_model(rule.model)
        count = 0
        while time.monotonic() < stop_at:
            pks = list(rule.queryset(cutoff).order_by().values_list("pk", flat=True)[:batch_size])
            if not pks:
                break
            rows = model._default_manager.filter(pk__in=pks)
            if rule.clear:
                count += rows.update(**rule.clear)
            else:
                rows.delete()
                count += len(pks)
            if len(pks) < batch_size:
                break
        done[rule.name] = count
    if any(done.values()):
        logger.info("Retention: %s", ", ".join(f"{n} {name}" for name, n in done.items() if n))
    return done
