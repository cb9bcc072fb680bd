"""Recovery links: random tokens stored hashed, 48 h expiry, statuses, the sweeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recovery import services, transitions
from recovery.models import AttemptStatus, Payment, RecoveryAttempt, RecoveryLink
from recovery.tasks import sweep_recoveries
from tests.recovery.conftest import report
from tinko.models import hash_token

pytestmark = pytest.mark.django_db


def open_link(token, *, now=None):
    """What the pay page does with a visit: the link by its token's hash, counted as opened (or expired)."""
    link = RecoveryLink.objects.filter(token_hash=hash_token(token)).first()
    if link is not None:
        transitions.open_link(link, now=now or timezone.now())
        link.refresh_from_db()
    return link


@pytest.fixture
def payment(api):
    api.post("events/payment_failed", report(reference="order-1"))
    return Payment.objects.get(reference="order-1")


def test_token_is_256_bits_and_only_its_hash_is_stored(payment):
    link, token = services.create_link(payment=payment)

    assert len(token) == 43  # 32 random bytes, URL-safe base64 without padding
    assert link.token_hash == hash_token(token)
    assert token not in str(list(RecoveryLink.objects.filter(pk=link.pk).values()))


def test_tokens_differ_and_links_expire_after_48_hours(payment):
    now = timezone.now()
    first, token1 = services.create_link(payment=payment, now=now)
    second, token2 = services.create_link(payment=payment, now=now)

    assert token1 != token2
    assert first.expires_at == now + timedelta(hours=48)


def test_opening_counts_and_moves_active_to_opened(payment):
    link, token = services.create_link(payment=payment)

    open_link(token)
    opened = open_link(token)

    assert opened.pk == link.pk
    assert opened.status == "opened"
    assert opened.open_count == 2
    assert opened.first_opened_at <= opened.last_opened_at


def test_unknown_token_is_none(payment):
    services.create_link(payment=payment)
    assert open_link("not-a-token") is None


def test_expired_link_is_not_opened(payment):
    link, token = services.create_link(payment=payment)
    later = timezone.now() + timedelta(hours=49)

    seen = open_link(token, now=later)

    assert seen.status == "expired"
    assert seen.open_count == 0


def test_revoked_link_is_not_opened(payment):
    link, token = services.send_recovery_link(payment=payment)
    services.send_recovery_link(payment=payment)

    assert open_link(token).status == "revoked"


def test_sweep_expires_live_links_past_their_expiry(payment):
    old, _ = services.create_link(payment=payment, now=timezone.now() - timedelta(hours=49))
    fresh, _ = services.create_link(payment=payment)

    assert transitions.expire_links(now=timezone.now()) == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == ("expired", "active")


def test_sweep_exhausts_recoveries_whose_window_ended(payment, api):
    api.post("events/payment_failed", report(reference="order-2"))
    link, _ = services.create_link(payment=payment)
    Payment.objects.filter(pk=payment.pk).update(recovery_ends_at=timezone.now() - timedelta(minutes=1))

    sweep_recoveries.fn()

    payment.refresh_from_db()
    link.refresh_from_db()
    assert payment.status == "exhausted"
    assert "window ended" in payment.status_reason
    assert payment.attempts.get().status == AttemptStatus.CANCELLED
    # The customer was told the link works until its expiry: the window's end does not cut it short.
    assert link.status == "active" and link.expires_at > timezone.now()
    assert Payment.objects.get(reference="order-2").status == "recovering"
    assert RecoveryAttempt.objects.filter(payment__reference="order-2", status="scheduled").count() == 1


def test_a_link_sent_just_before_the_window_ends_still_works_after_it(payment):
    link, token = services.create_link(payment=payment)
    Payment.objects.filter(pk=payment.pk).update(recovery_ends_at=timezone.now() - timedelta(minutes=1))
    sweep_recoveries.fn()

    opened = open_link(token)

    assert Payment.objects.get(pk=payment.pk).status == "exhausted"
    assert opened.pk == link.pk and opened.status == "opened"
    # It expires when it said it would, through the ordinary sweep.
    assert transitions.expire_links(now=link.expires_at + timedelta(seconds=1)) == 1


def test_a_message_reuses_the_live_link_and_extends_its_expiry(payment):
    first, token = services.create_link(payment=payment, now=timezone.now() - timedelta(hours=40))
    now = timezone.now()

    again, same = services.link_for_message(payment=payment, now=now)

    assert (again.pk, same) == (first.pk, token)
    again.refresh_from_db()
    assert again.expires_at == now + services.LINK_TTL
    assert RecoveryLink.objects.filter(payment=payment).count() == 1


def test_a_link_never_gets_a_shorter_expiry(payment):
    first, _ = services.create_link(payment=payment, ttl=timedelta(days=5))
    services.link_for_message(payment=payment, now=timezone.now())
    first.refresh_from_db()
    assert first.expires_at - first.created_at == timedelta(days=5)


def test_an_expired_or_revoked_link_is_not_reused(payment):
    old, _ = services.create_link(payment=payment, now=timezone.now() - timedelta(days=3))
    revoked, _ = services.create_link(payment=payment)
    RecoveryLink.objects.filter(pk=revoked.pk).update(status="revoked")

    new, _ = services.link_for_message(payment=payment, now=timezone.now())

    assert new.pk not in (old.pk, revoked.pk)


def test_only_an_explicit_new_link_revokes_the_live_one(payment):
    first, _ = services.create_link(payment=payment)
    services.link_for_message(payment=payment, now=timezone.now())
    first.refresh_from_db()
    assert first.status == "active"

    services.send_recovery_link(payment=payment)

    first.refresh_from_db()
    assert first.status == "revoked"


def test_recovered_payment_completes_the_paying_link_and_revokes_the_rest(payment):
    paying, _ = services.create_link(payment=payment)
    other, _ = services.create_link(payment=payment)
    now = timezone.now()

    locked = Payment.objects.select_for_update().get(pk=payment.pk)
    assert transitions.recover(payment=locked, amount=4999, now=now, link=paying, channel="email")

    paying.refresh_from_db()
    other.refresh_from_db()
    assert (paying.status, other.status) == ("completed", "revoked")
    locked.refresh_from_db()
    assert (locked.status, locked.recovered_channel) == ("recovered", "email")
    assert not transitions.recover(payment=locked, amount=4999, now=now)


def test_recovered_payment_cancels_what_was_still_planned(payment):
    planned = payment.attempts.get()
    assert planned.status == AttemptStatus.SCHEDULED

    locked = Payment.objects.select_for_update().get(pk=payment.pk)
    transitions.recover(payment=locked, amount=4999, now=timezone.now(), channel="email")

    planned.refresh_from_db()
    assert planned.status == AttemptStatus.CANCELLED
    assert planned.outcome == "The payment was recovered."
