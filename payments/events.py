"""What a PSP event means for Tinko, in provider-neutral terms, and applying it.

A provider package (payments/stripe/, payments/razorpay/) turns a verified
webhook event into an :class:`EventOutcome` (re-fetching from the PSP where
money is decided); :func:`apply_outcome` then writes it, inside the caller's
transaction:

- failures go through the same service as the ingestion API
  (``recovery.ingestion.record_failures``);
- successes end recoveries through ``recovery.services.mark_recovered`` under
  the payment's row lock, and are kept as :class:`ProviderSuccess` rows so
  that a success delivered before its failure still ends the recovery when the
  failure arrives;
- card updates (a card updater gave the customer's card new details) re-plan
  an automatic re-charge with the new card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from payments.models import Payment, PaymentStatus, ProviderSuccess
from recovery.reports import FailureReport
from tinko.formatting import english


@dataclass(frozen=True)
class SuccessFacts:
    """Money arrived at the PSP (confirmed by a re-fetch). ``references``: every id of the paid object."""

    references: tuple[str, ...]
    charge_id: str
    amount: int
    currency: str
    occurred_at: datetime
    link_id: int | None = None
    attempt_key: str = ""
    payment_id: int | None = None


@dataclass(frozen=True)
class CardUpdate:
    """The PSP's card updater changed a saved card."""

    payment_method_id: str
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None
    fingerprint: str = ""


@dataclass
class EventOutcome:
    failures: list[FailureReport] = field(default_factory=list)
    successes: list[SuccessFacts] = field(default_factory=list)
    card_updates: list[CardUpdate] = field(default_factory=list)
    note: str = ""
    # Filled in by apply_outcome: the payments the event changed or concerned.
    payment_ids: list[int] = field(default_factory=list)


def apply_outcome(*, account, outcome: EventOutcome) -> str:
    """Write what an event means. Runs inside the caller's transaction; returns a one-line summary."""
    notes = [outcome.note] if outcome.note else []
    for report in outcome.failures:
        notes.append(record_failure(account=account, report=report, touched=outcome.payment_ids))
    for success in outcome.successes:
        notes.append(record_success(account=account, success=success, touched=outcome.payment_ids))
    for update in outcome.card_updates:
        notes.append(update_card(account=account, update=update, touched=outcome.payment_ids))
    return " ".join(n for n in notes if n) or "Nothing to do."


def _payment_q(references) -> Q:
    references = [r for r in references if r]
    return Q(reference__in=references) | Q(provider_payment_id__in=references)


def record_failure(*, account, report: FailureReport, touched: list | None = None) -> str:
    """Record one PSP-reported failure through the ingestion service, unless the payment is already recovered."""
    from recovery.ingestion import PaymentRecovered, record_failures

    organization = account.organization
    report.provider_account_id = account.pk
    report.provider_account = account
    touched = touched if touched is not None else []
    try:
        result = record_failures(
            organization=organization, reports=[report], source=account.provider, skip_recovered=True
        )[0]
    except PaymentRecovered as exc:
        touched.append(exc.payment.pk)
        # Webhooks arrive in any order: the success came first. A failure of a
        # paid payment must not re-open its recovery.
        return f"Payment {report.reference} is already recovered; the failure was not recorded."
    payment = result.payment
    touched.append(payment.pk)
    if result.duplicate:
        return f"Failure {report.event_id} of payment {payment.reference} was already recorded."
    success = (
        ProviderSuccess.objects.filter(account=account, payment__isnull=True)
        .filter(
            Q(references__contains=f" {payment.reference} ")
            | Q(references__contains=f" {payment.provider_payment_id or '-'} ")
        )
        .order_by("occurred_at")
        .first()
    )
    if success is not None:
        return _recover(account=account, payment=payment, success=success, facts=None)
    return f"Failure of payment {payment.reference} recorded ({result.event.category})."


def record_success(*, account, success: SuccessFacts, touched: list | None = None) -> str:
    """Keep the success, and end the matching recovery (if Tinko knows the payment yet)."""
    from recovery.models import RecoveryLink

    try:
        with transaction.atomic():
            stored = ProviderSuccess.objects.create(
                organization_id=account.organization_id, account=account,
                references=" " + " ".join(r for r in success.references if r) + " ",
                charge_id=success.charge_id, amount=success.amount, currency=success.currency,
                occurred_at=success.occurred_at,
            )
    except IntegrityError:
        stored = ProviderSuccess.objects.get(account=account, charge_id=success.charge_id)
    payments = Payment.objects.filter(organization_id=account.organization_id)
    payment = None
    if success.link_id:
        link = RecoveryLink.objects.filter(organization_id=account.organization_id, pk=success.link_id).first()
        if link is not None:
            payment = payments.filter(pk=link.payment_id).first()
    if payment is None and success.payment_id:
        payment = payments.filter(pk=success.payment_id).first()
    if payment is None:
        payment = payments.filter(_payment_q(success.references)).order_by("pk").first()
    if payment is None:
        return f"Payment {success.charge_id} matches no payment under recovery (kept in case its failure arrives later)."
    if touched is not None:
        touched.append(payment.pk)
    return _recover(account=account, payment=payment, success=stored, facts=success)


def _recover(*, account, payment, success: ProviderSuccess, facts: SuccessFacts | None) -> str:
    from recovery.models import RecoveryAttempt, RecoveryLink
    from recovery.services import mark_recovered

    payment = Payment.objects.select_for_update(of=("self",)).select_related("organization").get(pk=payment.pk)
    ProviderSuccess.objects.filter(pk=success.pk).update(payment=payment)
    if success.currency.upper() != payment.currency.upper():
        return (
            f"Payment {payment.reference} is in {payment.currency} but {success.amount} {success.currency} arrived; "
            "left for a person to check."
        )
    attempt = link = None
    if facts is not None and facts.attempt_key:
        attempt = RecoveryAttempt.objects.filter(payment=payment, idempotency_key=facts.attempt_key).first()
    if facts is not None and facts.link_id:
        link = RecoveryLink.objects.filter(payment=payment, pk=facts.link_id).first()
    if attempt is not None:
        detail = f"Recovered by automatic retry {attempt.sequence}."
    elif link is not None:
        detail = "Recovered: the customer paid through the pay page."
    else:
        detail = f"Paid at {english(account.get_provider_display())} ({success.charge_id})."
    changed = mark_recovered(
        payment=payment, amount=success.amount, now=timezone.now(), attempt=attempt, link=link, detail=detail,
    )
    if not changed:
        return f"Payment {payment.reference} was already recovered."
    return f"Payment {payment.reference} recovered ({success.amount} {success.currency}, {success.charge_id})."


def update_card(*, account, update: CardUpdate, touched: list | None = None) -> str:
    """New card details for open payments paying with ``update.payment_method_id``; the planner decides a re-charge.

    Each payment goes through :func:`recovery.services.card_changed`, the one
    path for a changed card (quiet hours, network limits, the window apply).
    """
    from recovery.services import card_changed

    payments = list(
        Payment.objects.select_for_update(of=("self",)).select_related("organization").filter(
            provider_account=account, provider_payment_method_id=update.payment_method_id,
            status__in=[*Payment.OPEN, PaymentStatus.EXHAUSTED],
        )
    )
    if not payments:
        return f"No payment under recovery uses payment method {update.payment_method_id}."
    notes = []
    for payment in payments:
        if touched is not None:
            touched.append(payment.pk)
        _attempt, note = card_changed(
            payment=payment, source=f"{english(account.get_provider_display())} card updater", brand=update.brand,
            last4=update.last4, exp_month=update.exp_month, exp_year=update.exp_year, fingerprint=update.fingerprint,
        )
        notes.append(note)
    return " ".join(notes)
