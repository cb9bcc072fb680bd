"""Writes of the recovery engine: policies, links, manual actions, the end of a recovery.

Lock, check, transition: every status change takes the payment's (or
attempt's) row lock, checks the current state and returns early if the work
is already done.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from payments.models import Channel, Payment, PaymentStatus
from recovery import history as history_loader
from recovery.models import (
    AttemptKind,
    AttemptStatus,
    FailureEvent,
    LinkStatus,
    RecoveryAttempt,
    RecoveryLink,
    RetryPolicy,
)
from recovery.planner import check_network_limits
from tinko import metrics
from tinko.services import record_audit

LINK_TTL = timedelta(hours=48)

# Soft declines that clear within hours are retried sooner than insufficient funds.
DEFAULT_CATEGORY_OVERRIDES = {
    "processing_error": {"max_retries": 3, "initial_delay_seconds": 3600, "max_delay_seconds": 6 * 3600},
    "network_error": {"max_retries": 3, "initial_delay_seconds": 1800, "max_delay_seconds": 6 * 3600},
    "card_declined": {"max_retries": 3},
}


class RecoveryError(Exception):
    """A requested action is not possible in the payment's current state; the message says why."""

    def __init__(self, message: str, *, code: str = "conflict"):
        super().__init__(message)
        self.message = message
        self.code = code


def create_default_policy(organization) -> RetryPolicy:
    """The policy every organization starts with (idempotent)."""
    try:
        with transaction.atomic():
            policy, _ = RetryPolicy.objects.get_or_create(
                organization=organization,
                is_default=True,
                defaults={"name": "Default", "category_overrides": DEFAULT_CATEGORY_OVERRIDES},
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
            category_overrides=DEFAULT_CATEGORY_OVERRIDES,
        )


def _locked_payment(payment) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).select_related("organization", "customer", "policy").get(pk=payment.pk)


def create_link(*, payment, now=None, ttl: timedelta = LINK_TTL) -> tuple[RecoveryLink, str]:
    """A new pay link; returns (link, token). The token exists only in the return value."""
    now = now or timezone.now()
    token, token_hash = RecoveryLink.new_token()
    link = RecoveryLink.objects.create(
        organization_id=payment.organization_id, payment=payment, token_hash=token_hash, expires_at=now + ttl,
        created_at=now,
    )
    return link, token


def revoke_live_links(*, payment, now, keep: RecoveryLink | None = None) -> int:
    links = RecoveryLink.objects.filter(payment=payment, status__in=RecoveryLink.LIVE)
    if keep is not None:
        links = links.exclude(pk=keep.pk)
    return links.update(status=LinkStatus.REVOKED, revoked_at=now)


@transaction.atomic
def send_recovery_link(*, payment, actor=None, request=None) -> tuple[RecoveryLink, str]:
    """A fresh pay link for an open recovery; earlier live links stop working. Returns (link, token)."""
    payment = _locked_payment(payment)
    if payment.status not in Payment.OPEN and payment.status != PaymentStatus.EXHAUSTED:
        raise RecoveryError(f"The payment is {payment.status}; there is nothing left to pay.")
    now = timezone.now()
    link, token = create_link(payment=payment, now=now)
    revoke_live_links(payment=payment, now=now, keep=link)
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
    now = timezone.now()
    RecoveryAttempt.objects.filter(payment=payment, status__in=[AttemptStatus.SCHEDULED, AttemptStatus.QUEUED]).update(
        status=AttemptStatus.CANCELLED, finished_at=now, outcome="Recovery cancelled."
    )
    revoke_live_links(payment=payment, now=now)
    previous = payment.status
    payment.status = PaymentStatus.CANCELLED
    payment.cancelled_at = now
    payment.status_reason = "Recovery cancelled."
    payment.updated_at = now
    payment.save(update_fields=["status", "cancelled_at", "status_reason", "updated_at"])
    record_audit(
        organization=payment.organization, action="payment.cancelled", actor=actor, request=request, target=payment,
        data={"reference": payment.reference, "from": previous},
    )
    return payment


@transaction.atomic
def retry_now(*, payment, actor=None, request=None) -> RecoveryAttempt:
    """Schedule an automatic re-charge for now, within the card-network rules; replaces what was scheduled."""
    from payments.providers import recharge_provider

    payment = _locked_payment(payment)
    if payment.status not in Payment.OPEN and payment.status != PaymentStatus.EXHAUSTED:
        raise RecoveryError(f"The payment is {payment.status}; it cannot be retried.")
    latest = FailureEvent.objects.filter(payment=payment).order_by("-occurred_at", "-pk").first()
    if latest is not None and latest.network_stop:
        raise RecoveryError(f"The card network forbids another attempt: {latest.reason}")
    provider, why = recharge_provider(payment)
    if provider is None:
        raise RecoveryError(why)
    now = timezone.now()
    history = history_loader.payment_histories([payment.pk])[payment.pk]
    if history.busy:
        raise RecoveryError("An attempt is already in progress for this payment.")
    card_key = payment.card_key or f"payment:{payment.pk}"
    cards = history_loader.card_histories(organization_id=payment.organization_id, card_keys=[card_key], now=now)
    allowed, note = check_network_limits(
        card_brand=payment.card_brand, card=cards[card_key], amount=payment.amount, currency=payment.currency, when=now
    )
    if allowed is None:
        raise RecoveryError(note[:1].upper() + note[1:] + ".")
    RecoveryAttempt.objects.filter(payment=payment, status=AttemptStatus.SCHEDULED).update(
        status=AttemptStatus.CANCELLED, finished_at=now, outcome="Replaced by a manual retry."
    )
    who = getattr(actor, "email", None) or (f"API key {actor.display_prefix}" if actor is not None else "system")
    reason = f"Retry requested by {who}"
    if note:
        reason += f"; {note}"
    attempt = RecoveryAttempt.objects.create(
        organization_id=payment.organization_id,
        payment=payment,
        sequence=history.last_sequence + 1,
        kind=AttemptKind.AUTO_RETRY,
        channel=Channel.PSP,
        scheduled_for=allowed,
        reason=reason + ".",
        card_key=card_key,
        amount=payment.amount,
        currency=payment.currency,
    )
    payment.status = PaymentStatus.RECOVERING
    payment.status_reason = attempt.reason
    payment.updated_at = now
    payment.save(update_fields=["status", "status_reason", "updated_at"])
    record_audit(
        organization=payment.organization, action="payment.retry_requested", actor=actor, request=request,
        target=payment, data={"reference": payment.reference, "attempt": attempt.sequence},
    )
    return attempt


def link_channel(link) -> str:
    """The channel that carried ``link`` to the customer (the attempt that sent it), or "link" when none did."""
    channel = (
        RecoveryAttempt.objects.filter(payment_id=link.payment_id, link_id=link.pk).values_list("channel", flat=True).first()
    )
    return channel or "link"


def mark_recovered(
    *, payment, amount: int, now, attempt: RecoveryAttempt | None = None, link: RecoveryLink | None = None,
    channel: str = "", detail: str = "",
) -> bool:
    """End a recovery with success. The caller holds the payment's row lock. False if it was already recovered.

    Attribution: the attempt (and its channel) or the link that brought the
    money back; without ``channel``, a link's is the channel that carried it.
    Remaining attempts are cancelled; the paying link is completed, other
    live links revoked.
    """
    if payment.status == PaymentStatus.RECOVERED:
        return False
    previous = payment.status
    payment.status = PaymentStatus.RECOVERED
    payment.recovered_at = now
    payment.recovered_amount = amount
    payment.recovered_attempt = attempt
    payment.recovered_channel = channel or (
        link_channel(link) if link is not None else attempt.channel if attempt is not None else ""
    )
    payment.status_reason = detail or "Recovered."
    payment.updated_at = now
    payment.save(
        update_fields=[
            "status", "recovered_at", "recovered_amount", "recovered_attempt", "recovered_channel", "status_reason",
            "updated_at",
        ]
    )
    if link is not None:
        RecoveryLink.objects.filter(pk=link.pk).update(status=LinkStatus.COMPLETED, completed_at=now)
    _end_pending(payment=payment, now=now, attempt=attempt, link=link)
    metrics.payment_recovered(amount=amount, currency=payment.currency, channel=payment.recovered_channel)
    from notifications.webhooks import payment_event

    payment_event(payment, "payment.recovered", attempt=attempt.sequence if attempt else None)
    record_audit(
        organization=payment.organization, action="payment.recovered", target=payment,
        data={
            "reference": payment.reference, "from": previous, "amount": amount, "currency": payment.currency,
            "channel": payment.recovered_channel, "attempt": attempt.sequence if attempt else None,
        },
    )
    return True


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
    mark_recovered(payment=payment, amount=amount, now=timezone.now(), detail="Paid outside Tinko (reported by the merchant).")
    record_audit(
        organization=payment.organization, action="payment.reported_paid", actor=actor, request=request, target=payment,
        data={"reference": payment.reference, "amount": amount, "currency": payment.currency},
    )
    return payment


def open_link(token: str, *, now=None) -> RecoveryLink | None:
    """The link for ``token`` (None if there is none); a live one is counted as opened (``active → opened``).

    For the pay page, which shows its own page for an expired, revoked or
    completed link. A live link past its expiry becomes ``expired`` here even
    before the sweep gets to it.
    """
    from tinko.models import hash_token

    now = now or timezone.now()
    with transaction.atomic():
        link = (
            RecoveryLink.objects.select_for_update()
            .select_related("payment", "payment__organization")
            .filter(token_hash=hash_token(token))
            .first()
        )
        if link is None:
            return None
        if link.status in RecoveryLink.LIVE and link.expires_at <= now:
            link.status = LinkStatus.EXPIRED
            link.save(update_fields=["status"])
        if link.status not in RecoveryLink.LIVE:
            return link
        link.status = LinkStatus.OPENED
        link.open_count += 1
        link.first_opened_at = link.first_opened_at or now
        link.last_opened_at = now
        link.save(update_fields=["status", "open_count", "first_opened_at", "last_opened_at"])
        from notifications.services import count_link_click

        count_link_click(link, at=now)
        return link


def _end_pending(*, payment, now, attempt, link) -> None:
    """Cancel the payment's other active attempts and revoke its other live links, in one round trip.

    This runs once per recovered payment, ten thousand times in a busy minute
    of automatic retries, so on PostgreSQL the two UPDATEs travel together
    (SQLite has no data-modifying WITH).
    """
    if connection.vendor != "postgresql":
        pending = RecoveryAttempt.objects.filter(payment=payment, status__in=RecoveryAttempt.ACTIVE)
        if attempt is not None:
            pending = pending.exclude(pk=attempt.pk)
        pending.update(status=AttemptStatus.CANCELLED, finished_at=now, outcome="The payment was recovered.")
        revoke_live_links(payment=payment, now=now, keep=link)
        return
    attempts = RecoveryAttempt._meta.db_table
    links = RecoveryLink._meta.db_table
    active = ", ".join(["%s"] * len(RecoveryAttempt.ACTIVE))
    live = ", ".join(["%s"] * len(RecoveryLink.LIVE))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH cancelled AS (UPDATE {attempts} SET status = %s, finished_at = %s, outcome = %s "
            f"WHERE payment_id = %s AND status IN ({active}) AND id <> %s RETURNING 1) "
            f"UPDATE {links} SET status = %s, revoked_at = %s WHERE payment_id = %s AND status IN ({live}) AND id <> %s",
            [
                AttemptStatus.CANCELLED, now, "The payment was recovered.", payment.pk, *RecoveryAttempt.ACTIVE,
                attempt.pk if attempt is not None else 0,
                LinkStatus.REVOKED, now, payment.pk, *RecoveryLink.LIVE, link.pk if link is not None else 0,
            ],
        )


def expire_links(*, now=None) -> int:
    """Live links past their expiry become ``expired``."""
    now = now or timezone.now()
    return RecoveryLink.objects.filter(status__in=RecoveryLink.LIVE, expires_at__lte=now).update(
        status=LinkStatus.EXPIRED
    )


def exhaust_ended_recoveries(*, now=None, batch_size: int = 500) -> int:
    """Open recoveries whose window has ended become ``exhausted``; their scheduled attempts are cancelled."""
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
            RecoveryAttempt.objects.filter(payment_id__in=ids, status=AttemptStatus.SCHEDULED).update(
                status=AttemptStatus.CANCELLED, finished_at=now, outcome="The recovery window ended."
            )
            RecoveryLink.objects.filter(payment_id__in=ids, status__in=RecoveryLink.LIVE).update(
                status=LinkStatus.EXPIRED
            )
            Payment.objects.filter(pk__in=ids, status__in=Payment.OPEN).update(
                status=PaymentStatus.EXHAUSTED, status_reason="The recovery window ended without payment.",
                updated_at=now,
            )
            from notifications.webhooks import payments_event

            for payment in payments:
                payment.status, payment.status_reason = PaymentStatus.EXHAUSTED, "The recovery window ended without payment."
                payments_event(payment.organization_id, [payment], "payment.exhausted")
        total += len(ids)
        if len(ids) < batch_size:
            return total



@transaction.atomic
def save_policy(*, serializer, organization, request=None) -> RetryPolicy:
    """Create or change a policy from a validated serializer; making it the default unsets the old one."""
    from rest_framework.exceptions import ValidationError as ApiValidationError

    from tinko.models import Organization

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
