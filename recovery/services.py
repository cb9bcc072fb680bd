"""Writes of the recovery engine: policies, links, manual actions, the end of a recovery.

Lock, check, transition: each action takes the payment's row lock, checks the
current state and returns early if the work is already done; the status
change itself is made by :mod:`recovery.transitions`.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError as ApiValidationError

from recovery import history as history_loader
from recovery import transitions
from recovery.messaging import enabled_channels
from recovery.models import (
    AttemptKind,
    Channel,
    FailureEvent,
    Payment,
    PaymentStatus,
    RecoveryAttempt,
    RecoveryLink,
    RetryPolicy,
    default_channels,
)
from recovery.planner import plan_card_changed, plan_retry_now
from recovery.psp import recharge_provider
from tinko import bulk, crypto
from tinko.models import ApiKey, Organization
from tinko.services import record_audit

LINK_TTL = timedelta(hours=48)



class RecoveryError(Exception):
    """A requested action is not possible in the payment's current state; the message says why."""

    def __init__(self, message: str, *, code: str = "conflict"):
        super().__init__(message)
        self.message = message
        self.code = code


def default_policy_channels() -> list[str]:
    """The default channels, in order, that this deployment can send on (no SMS/WhatsApp without Twilio)."""
    enabled = enabled_channels()
    return [c for c in default_channels() if c in enabled]


def create_default_policy(organization) -> RetryPolicy:
    """The policy every organization starts with (idempotent): Tinko's default steps, channels that can send."""
    try:
        with transaction.atomic():
            policy, _ = RetryPolicy.objects.get_or_create(
                organization=organization,
                is_default=True,
                defaults={"name": "Default", "channels": default_policy_channels()},
            )
            return policy
    except IntegrityError:
        # Created concurrently, or an existing policy is already named "Default".
        existing = RetryPolicy.objects.filter(organization=organization, is_default=True).first()
        if existing is not None:
            return existing
        return RetryPolicy.objects.create(
            organization=organization,
            is_default=True,
            name=f"Default ({timezone.now():%Y-%m-%d %H:%M:%S})",
            channels=default_policy_channels(),
        )


def _locked_payment(payment) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).select_related("organization", "customer", "policy").get(pk=payment.pk)


def create_link(*, payment, now=None, ttl: timedelta = LINK_TTL) -> tuple[RecoveryLink, str]:
    """A new pay link; returns (link, token). The token is stored only encrypted (for the next message)."""
    now = now or timezone.now()
    link, token = _new_link(payment=payment, now=now, ttl=ttl)
    link.save(force_insert=True)
    return link, token


def _new_link(*, payment, now, ttl: timedelta, pk=None) -> tuple[RecoveryLink, str]:
    """A new, unsaved pay link (with ``pk`` when its id was drawn already); returns (link, token)."""
    token, token_hash = RecoveryLink.new_token()
    link = RecoveryLink(
        id=pk, organization_id=payment.organization_id, payment=payment, token_hash=token_hash, expires_at=now + ttl,
        token_encrypted=crypto.encrypt(token), created_at=now,
    )
    return link, token


def _live_links(payment_ids, now):
    """The live links (with a stored token) of these payments, newest first per payment, locked."""
    return (
        RecoveryLink.objects.select_for_update()
        .filter(payment_id__in=payment_ids, status__in=RecoveryLink.LIVE, expires_at__gt=now)
        .exclude(token_encrypted="")
        .order_by("payment_id", "-expires_at", "-pk")
    )


@dataclass
class _Preloaded:
    found: dict  # {payment id: its newest live link or None}
    ids: list  # ids drawn for the new links of the payments without one
    new: list  # the new links made inside the block, inserted together at its end


# Read for a recovery job's messages at once (preloaded_links).
_preloaded: ContextVar[_Preloaded | None] = ContextVar("preloaded_links", default=None)


@contextmanager
def preloaded_links(payments, *, now):
    """Inside the block, :func:`link_for_message` finds these payments' live links read (and locked) in one query,
    and the new links it makes for the others are inserted together when the block ends.

    For a recovery job's messages (recovery.runner), one query instead of one per
    message, and one INSERT (with one read of ids, drawn up front so that the
    messages and attempts can name their links) instead of one per new link. The
    caller holds the payments' locks, inside the transaction the links are used
    in; each preloaded entry serves one message (a second message for the same
    payment reads again, and would not see a link made in the block: the runner
    sends one message per payment in a block). If the block raises, no new link
    is inserted (the caller's transaction rolls back anyway).
    """
    found: dict = {p.pk: None for p in payments}
    for link in _live_links(list(found), now):
        if found.get(link.payment_id) is None:
            found[link.payment_id] = link
    missing = sum(1 for link in found.values() if link is None)
    # Elsewhere than PostgreSQL (local mode) no ids are drawn up front: each new link is saved at once.
    ids = bulk.allocate_ids({RecoveryLink: missing})[RecoveryLink] if missing and bulk.is_postgresql() else []
    preloaded = _Preloaded(found=found, ids=ids, new=[])
    token = _preloaded.set(preloaded)
    try:
        yield
    finally:
        _preloaded.reset(token)
    bulk.insert([(RecoveryLink, preloaded.new)])


def link_for_message(*, payment, now, ttl: timedelta = LINK_TTL) -> tuple[RecoveryLink, str]:
    """The payment's live link for a message, valid at least ``ttl`` from now; returns (link, token).

    One live link per payment: the newest live link is reused and its expiry
    extended (never shortened), so a customer holding an earlier message keeps
    a working link. A new link is made only when none is live (or the live one
    predates stored tokens); nothing is revoked here. The caller holds the
    payment's lock. Must not move money.
    """
    preloaded = _preloaded.get()
    if preloaded is not None and payment.pk in preloaded.found:
        link = preloaded.found.pop(payment.pk)
        if link is None and preloaded.ids:
            # Inserted with the block's other new links when it ends.
            link, token = _new_link(payment=payment, now=now, ttl=ttl, pk=preloaded.ids.pop(0))
            preloaded.new.append(link)
            return link, token
    else:
        link = _live_links([payment.pk], now).first()
    if link is None:
        return create_link(payment=payment, now=now, ttl=ttl)
    try:
        token = crypto.decrypt(link.token_encrypted)
    except crypto.InvalidToken:  # its key was retired: a new link, the old one still works until it expires
        return create_link(payment=payment, now=now, ttl=ttl)
    if link.expires_at < now + ttl:
        link.expires_at = now + ttl
        link.save(update_fields=["expires_at"])
    return link, token


@transaction.atomic
def send_recovery_link(*, payment, actor=None, request=None) -> tuple[RecoveryLink, str]:
    """A fresh pay link for an open recovery; earlier live links stop working. Returns (link, token)."""
    payment = _locked_payment(payment)
    if payment.status not in Payment.OPEN and payment.status != PaymentStatus.EXHAUSTED:
        raise RecoveryError(f"The payment is {payment.status}; there is nothing left to pay.")
    now = timezone.now()
    link, token = create_link(payment=payment, now=now)
    transitions.revoke_links(payment=payment, now=now, keep=link)
    record_audit(
        organization=payment.organization, action="link.created", actor=actor, request=request, target=link,
        data={"payment": payment.reference, "expires_at": link.expires_at.isoformat()},
    )
    return link, token


@transaction.atomic
def cancel_recovery(*, payment, actor=None, request=None) -> Payment:
    """Stop recovering: scheduled attempts are cancelled and live links revoked (idempotent)."""
    payment = _locked_payment(payment)
    if payment.status == PaymentStatus.CANCELLED:
        return payment
    if payment.status == PaymentStatus.RECOVERED:
        raise RecoveryError("The payment is already recovered; there is nothing to cancel.")
    transitions.cancel(payment=payment, now=timezone.now(), actor=actor, request=request)
    return payment


def _customer_zone(payment):
    from zoneinfo import ZoneInfo

    customer = payment.customer
    return ZoneInfo(customer.timezone if customer and customer.timezone else payment.organization.timezone)


def _planned_recharge(*, payment, attempt, history, now, outcome: str) -> RecoveryAttempt:
    """Save a planned re-charge in place of what was scheduled (the caller holds the payment's lock)."""
    transitions.cancel_attempts(payment_ids=[payment.pk], now=now, outcome=outcome)
    saved = RecoveryAttempt.objects.create(
        organization_id=payment.organization_id, payment=payment, sequence=history.last_sequence + 1,
        kind=AttemptKind.AUTO_RETRY, channel=Channel.PSP, scheduled_for=attempt.scheduled_for, reason=attempt.reason,
        limit_code=attempt.limit_code, card_key=payment.card_key or f"payment:{payment.pk}", amount=payment.amount, currency=payment.currency,
    )
    transitions.plan_recharge(payment=payment, reason=saved.reason, now=now, limit_code=attempt.limit_code)
    return saved


def _card_history(payment, now):
    card_key = payment.card_key or f"payment:{payment.pk}"
    return history_loader.card_histories(organization_id=payment.organization_id, card_keys=[card_key], now=now)[card_key]


@transaction.atomic
def retry_now(*, payment, actor=None, request=None, override_quiet_hours: bool = False) -> RecoveryAttempt:
    """Schedule a re-charge now, as the planner allows it (network rules, quiet hours); replaces what was scheduled.

    Quiet hours move it to their end unless ``override_quiet_hours``, which only
    a person (a signed-in team member) may ask for; the attempt's reason then
    says who overrode them. Must not move money itself: the runner does.
    """
    payment = _locked_payment(payment)
    if payment.status not in Payment.OPEN and payment.status != PaymentStatus.EXHAUSTED:
        raise RecoveryError(f"The payment is {payment.status}; it cannot be retried.")
    person = actor is not None and not isinstance(actor, ApiKey) and getattr(actor, "email", None)
    if override_quiet_hours and not person:
        raise RecoveryError("Only a person may override the customer's quiet hours.", code="invalid")
    now = timezone.now()
    history = history_loader.payment_histories([payment.pk])[payment.pk]
    if history.busy:
        raise RecoveryError("An attempt is already in progress for this payment.")
    latest = FailureEvent.objects.filter(payment=payment).order_by("-occurred_at", "-pk").first()
    provider, why = recharge_provider(payment)
    who = person or (f"API key {actor.display_prefix}" if actor is not None else "system")
    plan = plan_retry_now(
        payment=payment, classification=latest, card=_card_history(payment, now), can_recharge=(provider is not None, why),
        policy=payment.policy, tz=_customer_zone(payment), now=now, requested_by=who,
        override_quiet_hours=override_quiet_hours,
    )
    if plan.attempt is None:
        raise RecoveryError(plan.reason)
    attempt = _planned_recharge(payment=payment, attempt=plan.attempt, history=history, now=now,
                                outcome="Replaced by a manual retry.")
    record_audit(
        organization=payment.organization, action="payment.retry_requested", actor=actor, request=request,
        target=payment, data={"reference": payment.reference, "attempt": attempt.sequence,
                              "override_quiet_hours": bool(override_quiet_hours)},
    )
    return attempt


CARD_FIELDS = ("card_brand", "card_last4", "card_exp_month", "card_exp_year", "card_fingerprint",
               "provider_payment_method_id")


def _card_replaced(old, new) -> bool:
    """A different card, not the same one with a new expiry: the fingerprint decides when both are known."""
    (old_fp, old_last4, old_method), (new_fp, new_last4, new_method) = old, new
    if old_fp and new_fp:
        return old_fp != new_fp
    return old_last4 != new_last4 or old_method != new_method


@transaction.atomic
def card_changed(*, payment, source: str, brand: str = "", last4: str = "", exp_month: int | None = None,
                 exp_year: int | None = None, fingerprint: str = "", payment_method_id: str = "",
                 now=None) -> tuple[RecoveryAttempt | None, str]:
    """The payment's card changed (card updater, the customer's new card, a PSP's customer/payment-method event).

    The one path for every source: store the new details, audit them, and let
    the planner (:func:`recovery.planner.plan_card_changed`) decide a re-charge
    with the new card within quiet hours, the card networks' limits and the
    recovery window. Returns (the planned re-charge or None, what happened).
    Must not move money itself: the runner does, at the planned time.
    """
    payment = _locked_payment(payment)
    now = now or timezone.now()
    old_card = (payment.card_fingerprint, payment.card_last4, payment.provider_payment_method_id)
    for attr, value in (
        ("card_brand", brand), ("card_last4", last4), ("card_exp_month", exp_month), ("card_exp_year", exp_year),
        ("card_fingerprint", fingerprint), ("provider_payment_method_id", payment_method_id),
    ):
        if value:
            setattr(payment, attr, value)
    payment.updated_at = now
    payment.save(update_fields=[*CARD_FIELDS, "updated_at"])
    record_audit(
        organization=payment.organization, action="payment.card_updated", target=payment,
        data={"reference": payment.reference, "last4": payment.card_last4, "source": source,
              "exp": f"{payment.card_exp_month or ''}/{payment.card_exp_year or ''}"},
    )
    if payment.status not in Payment.OPEN and payment.status != PaymentStatus.EXHAUSTED:
        return None, f"Card of payment {payment.reference} updated; the payment is {payment.status}."
    history = history_loader.payment_histories([payment.pk])[payment.pk]
    if history.busy:
        return None, (f"Card of payment {payment.reference} updated; an attempt is in progress and its outcome "
                      "decides what happens next.")
    latest = FailureEvent.objects.filter(payment=payment).order_by("-occurred_at", "-pk").first()
    provider, why = recharge_provider(payment)
    replaced = _card_replaced(old_card, (payment.card_fingerprint, payment.card_last4, payment.provider_payment_method_id))
    plan = plan_card_changed(
        payment=payment, classification=latest, card=_card_history(payment, now),
        can_recharge=(provider is not None, why), policy=payment.policy, tz=_customer_zone(payment), now=now,
        source=source, card_replaced=replaced,
    )
    if plan.attempt is None:
        return None, f"Card of payment {payment.reference} updated; no re-charge planned: {plan.reason}"
    attempt = _planned_recharge(payment=payment, attempt=plan.attempt, history=history, now=now,
                                outcome="Replaced: the card changed.")
    return attempt, f"Card of payment {payment.reference} updated; re-charge {attempt.sequence} planned."


@transaction.atomic
def report_paid(*, payment, amount: int | None = None, actor=None, request=None) -> Payment:
    """The merchant says the customer paid outside Tinko (a bank transfer, their own retry): end the recovery.

    Recorded as recovered with no channel or attempt (Tinko did not bring the
    money back), which is also how a held-out payment's recovery becomes
    visible to the holdout comparison. Reporting it again changes nothing.
    """
    payment = _locked_payment(payment)
    if payment.status == PaymentStatus.RECOVERED:
        return payment
    amount = payment.amount if amount is None else amount
    if not 0 < amount <= payment.amount:
        raise RecoveryError(
            f"The amount paid must be between 1 and the payment's {payment.amount} (minor units).", code="invalid"
        )
    transitions.recover(payment=payment, amount=amount, now=timezone.now(),
                        detail="Paid outside Tinko (reported by the merchant).")
    record_audit(
        organization=payment.organization, action="payment.reported_paid", actor=actor, request=request, target=payment,
        data={"reference": payment.reference, "amount": amount, "currency": payment.currency},
    )
    return payment


def exhaust_ended_recoveries(*, now=None, batch_size: int = 500) -> int:
    """Open recoveries whose window has ended become ``exhausted``; their scheduled attempts are cancelled.

    Their live pay links keep working until they expire (the message said until
    when); a customer who pays through one still recovers the payment.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            payments = list(
                Payment.objects.select_for_update(skip_locked=True)
                .filter(status__in=Payment.OPEN, recovery_ends_at__lte=now)
                .order_by("recovery_ends_at")[:batch_size]
            )
            if not payments:
                return total
            ids = [p.pk for p in payments]
            transitions.exhaust(payments, now=now, reason="The recovery window ended without payment.")
        total += len(ids)
        if len(ids) < batch_size:
            return total



@transaction.atomic
def save_policy(*, serializer, organization, request=None) -> RetryPolicy:
    """Create or change a policy from a validated serializer; making it the default unsets the old one."""
    # One policy change per organization at a time: two requests making
    # different policies the default must not both clear the old one first.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    creating = serializer.instance is None
    before = {} if creating else {f: getattr(serializer.instance, f) for f in serializer.validated_data}
    if serializer.validated_data.get("is_default"):
        RetryPolicy.objects.filter(organization=organization, is_default=True).exclude(
            pk=getattr(serializer.instance, "pk", None)
        ).update(is_default=False, updated_at=timezone.now())
    try:
        with transaction.atomic():
            policy = serializer.save(organization=organization, updated_at=timezone.now())
    except IntegrityError:
        # The name check ran before the lock; a concurrent request took the name.
        raise ApiValidationError({"name": ["Another policy has this name."]}) from None
    changes = {
        f: {"from": _plain(before.get(f)), "to": _plain(getattr(policy, f))}
        for f in serializer.validated_data
        if creating or before.get(f) != getattr(policy, f)
    }
    record_audit(
        organization=organization, action="policy.created" if creating else "policy.updated", request=request,
        target=policy, data={"name": policy.name, "changes": changes},
    )
    return policy


def _plain(value):
    if value is None or isinstance(value, (bool, int, str, list, dict)):
        return value
    return str(value)


@transaction.atomic
def delete_policy(*, policy, request=None) -> None:
    """Delete a non-default policy; its payments move to the default."""
    policy = RetryPolicy.objects.select_for_update().get(pk=policy.pk)
    if policy.is_default:
        raise RecoveryError("The default policy cannot be deleted; make another policy the default first.")
    default = RetryPolicy.objects.get(organization_id=policy.organization_id, is_default=True)
    Payment.objects.filter(policy=policy).update(policy=default)
    record_audit(organization=policy.organization, action="policy.deleted", request=request, target=policy,
                 data={"name": policy.name})
    policy.delete()
