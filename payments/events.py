"""What a PSP event means for Tinko, in provider-neutral terms, and applying it.

A provider package (payments/stripe/, payments/razorpay/) turns a verified
webhook event into an :class:`EventOutcome` (re-fetching from the PSP where
money is decided); :func:`apply_outcome` then writes it, inside the caller's
transaction:

- failures go through the same service as the ingestion API
  (``recovery.ingestion.record_failures``);
- successes end recoveries through ``recovery.transitions.recover`` under
  the payment's row lock, and are kept as :class:`ProviderSuccess` rows so
  that a success delivered before its failure still ends the recovery when the
  failure arrives;
- card updates (a card updater gave the customer's card new details) and card
  changes (the customer chose another default card, or added one) re-plan an
  automatic re-charge with the new card, through :func:`recharge_with_new_card`;
- a success for a payment another charge already recovered raises a
  "possible double payment" alert (audit, timeline, merchant webhook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from payments.models import ProviderSuccess
from recovery import transitions
from recovery.ingestion import PaymentRecovered, record_failures
from recovery.models import Payment, PaymentStatus, RecoveryAttempt, RecoveryLink
from recovery.reports import FailureReport
from recovery.services import card_changed
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


@dataclass(frozen=True)
class CardChange:
    """The customer changed which card pays: a new default, or a card added (``payment_method_id`` then names it)."""

    customer_id: str
    why: str
    payment_method_id: str = ""
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
    card_changes: list[CardChange] = field(default_factory=list)
    note: str = ""
    # The idempotency key of Tinko's own re-charge that the event reports (its decline, which the
    # attempt recorded itself): nothing to write, but the event concerns that attempt's payment.
    own_attempt: str = ""
    # Filled in by apply_outcome: the payments the event changed or concerned.
    payment_ids: list[int] = field(default_factory=list)


def apply_outcome(*, account, outcome: EventOutcome) -> str:
    """Write what an event means. Runs inside the caller's transaction; returns a one-line summary."""
    notes = [outcome.note] if outcome.note else []
    if outcome.own_attempt:
        # Within the account's organization only: the key comes from the PSP object's metadata.
        payment_id = RecoveryAttempt.objects.filter(
            organization_id=account.organization_id, idempotency_key=outcome.own_attempt
        ).values_list("payment_id", flat=True).first()
        if payment_id is not None:
            outcome.payment_ids.append(payment_id)
    for report in outcome.failures:
        notes.append(record_failure(account=account, report=report, touched=outcome.payment_ids))
    for success in outcome.successes:
        notes.append(record_success(account=account, success=success, touched=outcome.payment_ids))
    for update in outcome.card_updates:
        notes.append(update_card(account=account, update=update, touched=outcome.payment_ids))
    for change in outcome.card_changes:
        notes.append(change_card(account=account, change=change, touched=outcome.payment_ids))
    return " ".join(n for n in notes if n) or "Nothing to do."


def _payment_q(references) -> Q:
    references = [r for r in references if r]
    return Q(reference__in=references) | Q(provider_payment_id__in=references)


def record_failure(*, account, report: FailureReport, touched: list | None = None) -> str:
    """Record one PSP-reported failure through the ingestion service, unless the payment is already recovered."""
    organization = account.organization
    report.provider_account_id = account.pk
    report.provider_account = account
    touched = touched if touched is not None else []
    own = _own_decline(account=account, report=report)
    if own is not None:
        touched.append(own.payment_id)
        # Tinko paid an invoice and it was declined: the PSP cannot tag that charge as Tinko's, but the
        # attempt already recorded this decline.
        return f"A decline of Tinko's own re-charge {own.sequence}; the attempt recorded it."
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


def _own_decline(*, account, report: FailureReport):
    """The attempt whose re-charge ``report`` reports (same payment, same declined charge), or None."""
    if not report.event_id or not report.reference.startswith("in_"):
        # Only an invoice's payment cannot carry Tinko's metadata (the others are skipped by the provider).
        return None
    return (
        RecoveryAttempt.objects.filter(
            organization_id=account.organization_id, payment__reference=report.reference,
            result__charge_id=report.event_id,
        ).only("pk", "payment_id", "sequence").first()
    )


def record_success(*, account, success: SuccessFacts, touched: list | None = None) -> str:
    """Keep the success, and end the matching recovery (if Tinko knows the payment yet)."""
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
    if payment is None and success.attempt_key:
        # Tinko's own re-charge, whose PSP object may carry nothing but the attempt's key.
        payment = payments.filter(pk__in=RecoveryAttempt.objects.filter(
            organization_id=account.organization_id, idempotency_key=success.attempt_key).values("payment_id")).first()
    if payment is None:
        payment = payments.filter(_payment_q(success.references)).order_by("pk").first()
    if payment is None:
        return f"Payment {success.charge_id} matches no payment under recovery (kept in case its failure arrives later)."
    if touched is not None:
        touched.append(payment.pk)
    return _recover(account=account, payment=payment, success=stored, facts=success)


def _recover(*, account, payment, success: ProviderSuccess, facts: SuccessFacts | None) -> str:
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
    changed = transitions.recover(
        payment=payment, amount=success.amount, now=timezone.now(), attempt=attempt, link=link, detail=detail,
    )
    if not changed:
        first = _recovering_charge(payment=payment, success=success, attempt=attempt)
        if first:
            return _double_payment(payment=payment, first=first, second=success)
        return f"Payment {payment.reference} was already recovered."
    return f"Payment {payment.reference} recovered ({success.amount} {success.currency}, {success.charge_id})."


def _recovering_charge(*, payment, success: ProviderSuccess, attempt) -> str:
    """The charge id that recovered ``payment`` when it is not ``success``'s money, else "".

    The same money reported twice (an attempt's own payment, a PaymentIntent's
    and its invoice's success, both keyed by the PaymentIntent) is not a second payment.
    """
    if payment.status != PaymentStatus.RECOVERED:
        return ""
    if attempt is not None and attempt.pk == payment.recovered_attempt_id:
        return ""
    known = set(
        ProviderSuccess.objects.filter(payment=payment, created_at__lt=success.created_at)
        .exclude(pk=success.pk).values_list("charge_id", flat=True)
    )
    if payment.recovered_attempt_id:
        recovered = RecoveryAttempt.objects.filter(pk=payment.recovered_attempt_id).values_list("result", flat=True).first()
        if recovered and recovered.get("charge_id"):
            known.add(recovered["charge_id"])
    if not known or success.charge_id in known:
        return ""
    return sorted(known)[0]


def _double_payment(*, payment, first: str, second: ProviderSuccess) -> str:
    """Record the alert once per second charge (recovery.transitions.paid_twice)."""
    if not transitions.paid_twice(payment=payment, first=first, second=second.charge_id, amount=second.amount,
                                  currency=second.currency):
        return f"Payment {payment.reference}: possible double payment already reported ({second.charge_id})."
    return (
        f"Payment {payment.reference} was already recovered by {first}, and {second.charge_id} paid it again: "
        "possible double payment."
    )


def recharge_with_new_card(payment, *, why: str, change: CardChange | None = None) -> str:
    """``payment``'s card changed at the PSP (new default, card added): store it and let the planner re-plan.

    Goes through :func:`recovery.services.card_changed`, the one path for a
    changed card: one re-charge with the new card as soon as quiet hours, the
    card networks' limits and the recovery window allow.
    """
    card = {}
    if change is not None and change.payment_method_id:
        card = {"brand": change.brand, "last4": change.last4, "exp_month": change.exp_month,
                "exp_year": change.exp_year, "fingerprint": change.fingerprint,
                "payment_method_id": change.payment_method_id}
    _attempt, note = card_changed(payment=payment, source=why, **card)
    return note


def _open_payments(account, **match) -> list:
    """The account's payments still under recovery (or exhausted) that ``match``, locked in reference order."""
    return list(
        Payment.objects.select_for_update(of=("self",)).select_related("organization").filter(
            provider_account=account, status__in=[*Payment.OPEN, PaymentStatus.EXHAUSTED], **match,
        ).order_by("reference")
    )


def change_card(*, account, change: CardChange, touched: list | None = None) -> str:
    """The customer's card changed at the PSP: re-plan their open payments at once (the card is resolved at charge time)."""
    payments = _open_payments(account, provider_customer_id=change.customer_id)
    if not payments:
        return f"No payment under recovery belongs to customer {change.customer_id}."
    notes = []
    for payment in payments:
        if touched is not None:
            touched.append(payment.pk)
        notes.append(recharge_with_new_card(payment, why=change.why, change=change))
    return " ".join(notes)


def update_card(*, account, update: CardUpdate, touched: list | None = None) -> str:
    """New card details for open payments paying with ``update.payment_method_id``; the planner decides a re-charge.

    Each payment goes through :func:`recovery.services.card_changed`, the one
    path for a changed card (quiet hours, network limits, the window apply).
    """
    payments = _open_payments(account, provider_payment_method_id=update.payment_method_id)
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
