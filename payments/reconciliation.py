"""Reconciliation: ask the PSP about payments under recovery whose state may have changed outside Tinko.

A customer may pay the merchant directly, or the merchant may retry a charge in
the PSP's dashboard; no webhook may ever tell Tinko. Every pass takes the
open recoveries of connected Stripe / Razorpay accounts that were not looked at
for ``TINKO_RECONCILE_EVERY`` seconds, asks the PSP (read only), records a
:class:`ReconciliationCheck` for each, and ends the recovery of a payment the
PSP says is paid.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from payments.models import ReconciliationCheck
from payments.providers import provider_account_for, provider_for_account
from recovery import transitions
from recovery.models import Payment, PaymentStatus, RecoveryAttempt

logger = logging.getLogger(__name__)


def due_payments(*, now, limit: int):
    recent = ReconciliationCheck.objects.filter(
        payment=OuterRef("pk"), checked_at__gt=now - timedelta(seconds=settings.TINKO_RECONCILE_EVERY)
    )
    return (
        Payment.objects.filter(
            status__in=[*Payment.OPEN, PaymentStatus.EXHAUSTED], provider__in=["stripe", "razorpay"],
            provider_account__isnull=False, provider_account__is_active=True,
        )
        .exclude(Exists(recent))
        .order_by("last_failed_at")[:limit]
    )


def reconcile(*, now=None, limit: int = 200) -> dict:
    """One pass; returns counts {"checked", "recovered", "errors"}."""
    now = now or timezone.now()
    counts = {"checked": 0, "recovered": 0, "errors": 0}
    for payment in list(due_payments(now=now, limit=limit)):
        account = provider_account_for(payment)
        if account is None:
            continue
        try:
            state = provider_for_account(account).fetch_payment_state(payment=payment)
        except Exception as exc:
            logger.warning("Reconciliation of payment %s failed: %s", payment.pk, type(exc).__name__)
            ReconciliationCheck.objects.create(
                organization_id=payment.organization_id, payment=payment, checked_at=now, paid=None,
                detail=f"The PSP could not be asked ({type(exc).__name__}).",
            )
            counts["errors"] += 1
            continue
        counts["checked"] += 1
        recovered = False
        with transaction.atomic():
            locked = Payment.objects.select_for_update(of=("self",)).select_related("organization").get(pk=payment.pk)
            if state.paid and state.currency.upper() == locked.currency.upper():
                # A re-charge of Tinko's whose answers were lost is the attempt's recovery, not one outside Tinko.
                attempt = RecoveryAttempt.objects.filter(
                    payment=locked, idempotency_key=state.attempt_key
                ).first() if state.attempt_key else None
                recovered = transitions.recover(
                    payment=locked, amount=state.amount_paid, now=now, attempt=attempt,
                    detail=(f"Recovered by automatic retry {attempt.sequence} (found by reconciliation): {state.detail}"
                            if attempt is not None else f"Paid outside Tinko: {state.detail}"),
                )
            ReconciliationCheck.objects.create(
                organization_id=payment.organization_id, payment=payment, checked_at=now, paid=state.paid,
                recovered=recovered, detail=state.detail[:500],
            )
        counts["recovered"] += int(recovered)
    if counts["checked"] or counts["errors"]:
        logger.info("Reconciliation: %(checked)s checked, %(recovered)s recovered, %(errors)s errors", counts)
    return counts
