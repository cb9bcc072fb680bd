"""The sandbox PSP: test-card outcomes, idempotency (also under concurrency), payment state, tenancy."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from payments.models import SandboxCharge
from payments.sandbox.cards import TEST_CARDS
from payments.sandbox.provider import SandboxProvider
from recovery.models import Payment

pytestmark = pytest.mark.django_db

_references = iter(range(1, 10**6))


def make_payment(org, *, last4: str = "4242", brand: str = "visa", amount: int = 1999, currency: str = "EUR") -> Payment:
    now = timezone.now()
    return Payment.objects.create(
        organization=org,
        reference=f"order-{next(_references)}",
        provider="sandbox",
        amount=amount,
        currency=currency,
        card_brand=brand,
        card_last4=last4,
        first_failed_at=now,
        last_failed_at=now,
    )


@pytest.fixture
def sandbox():
    return SandboxProvider()


def charge(sandbox, payment, key="key-1", **overrides):
    kwargs = {"payment": payment, "amount": payment.amount, "currency": payment.currency, "idempotency_key": key}
    return sandbox.charge_off_session(**(kwargs | overrides))


# --- the test-card table, expected values written out ---------------------------------------------

# (last4, brand, status, code, decline_code, advice_code, network_advice_code, network_decline_code, requires_action)
CARD_EXPECTATIONS = [
    ("4242", "visa", "succeeded", "", "", "", "", "", False),
    ("4444", "mastercard", "succeeded", "", "", "", "", "", False),
    ("0005", "amex", "succeeded", "", "", "", "", "", False),
    ("0002", "visa", "declined", "card_declined", "generic_decline", "try_again_later", "", "", False),
    ("9995", "visa", "declined", "card_declined", "insufficient_funds", "try_again_later", "", "", False),
    ("9987", "visa", "declined", "card_declined", "lost_card", "do_not_try_again", "", "", False),
    ("9979", "visa", "declined", "card_declined", "stolen_card", "do_not_try_again", "", "", False),
    ("0069", "visa", "declined", "expired_card", "expired_card", "confirm_card_data", "", "", False),
    ("0127", "visa", "declined", "incorrect_cvc", "incorrect_cvc", "confirm_card_data", "", "", False),
    ("0119", "visa", "declined", "processing_error", "processing_error", "try_again_later", "", "", False),
    ("3155", "visa", "declined", "authentication_required", "authentication_required", "", "", "", True),
    ("0341", "visa", "declined", "card_declined", "do_not_honor", "try_again_later", "", "", False),
    ("0303", "mastercard", "declined", "card_declined", "do_not_honor", "do_not_try_again", "03", "05", False),
    ("2525", "mastercard", "declined", "card_declined", "insufficient_funds", "try_again_later", "25", "51", False),
    ("1001", "visa", "declined", "card_declined", "revocation_of_authorization", "do_not_try_again", "", "R1", False),
    ("1234", "visa", "succeeded", "", "", "", "", "", False),  # not in the table
    ("", "", "succeeded", "", "", "", "", "", False),  # no card details at all
]


@pytest.mark.parametrize(
    ("last4", "brand", "status", "code", "decline_code", "advice_code", "mac", "raw_code", "requires_action"),
    CARD_EXPECTATIONS,
    ids=[row[0] or "no-card" for row in CARD_EXPECTATIONS],
)
def test_card_gives_its_documented_result(
    sandbox, org, last4, brand, status, code, decline_code, advice_code, mac, raw_code, requires_action
):
    payment = make_payment(org, last4=last4, brand=brand)

    result = charge(sandbox, payment)

    assert (
        result.status, result.code, result.decline_code, result.advice_code,
        result.network_advice_code, result.network_decline_code, result.requires_action,
    ) == (status, code, decline_code, advice_code, mac, raw_code, requires_action)
    assert (result.amount, result.currency) == (1999, "EUR")
    row = SandboxCharge.objects.get()
    assert (row.status, row.decline_code, row.charge_id) == (status, decline_code, result.charge_id)


def test_insufficient_funds_card_declines_every_time(sandbox, org):
    payment = make_payment(org, last4="9995")

    results = [charge(sandbox, payment, key=f"key-{n}").status for n in range(3)]

    assert results == ["declined", "declined", "declined"]


def test_decline_carries_a_customer_message(sandbox, org):
    result = charge(sandbox, make_payment(org, last4="9995"))

    assert result.message == "Your card has insufficient funds."


def test_charge_ids_look_like_sandbox_charges(sandbox, org):
    result = charge(sandbox, make_payment(org))

    assert result.charge_id.startswith("sbx_ch_")
    int(result.charge_id.removeprefix("sbx_ch_"), 16)  # the rest is hex
    assert result.raw["id"] == result.charge_id


def test_readme_documents_every_test_card():
    readme = (Path(__file__).resolve().parents[2] / "payments" / "sandbox" / "README.md").read_text()

    for last4 in TEST_CARDS:
        assert f"| {last4} |" in readme, last4


# --- the card that recovers -----------------------------------------------------------------------


def test_recovering_card_declines_its_first_charge_then_succeeds(sandbox, org):
    payment = make_payment(org, last4="9996")

    first = charge(sandbox, payment, key="attempt-1")
    second = charge(sandbox, payment, key="attempt-2")

    assert (first.status, first.decline_code) == ("declined", "insufficient_funds")
    assert second.status == "succeeded"


def test_recovering_card_counts_charges_per_payment(sandbox, org):
    charge(sandbox, make_payment(org, last4="9996"), key="other-payment")

    result = charge(sandbox, make_payment(org, last4="9996"), key="this-payment")

    assert result.decline_code == "insufficient_funds"


def test_replaying_the_recovering_cards_first_key_still_declines(sandbox, org):
    payment = make_payment(org, last4="9996")
    charge(sandbox, payment, key="attempt-1")
    charge(sandbox, payment, key="attempt-2")

    replay = charge(sandbox, payment, key="attempt-1")

    assert replay.status == "declined"


# --- idempotency ------------------------------------------------------------------------------------


def test_same_key_twice_records_one_charge_and_returns_the_same_result(sandbox, org):
    payment = make_payment(org)

    first = charge(sandbox, payment)
    second = charge(sandbox, payment)

    assert SandboxCharge.objects.count() == 1
    assert second == first


def test_same_key_twice_on_a_declining_card_records_one_decline(sandbox, org):
    payment = make_payment(org, last4="0002")

    first = charge(sandbox, payment)
    second = charge(sandbox, payment)

    assert SandboxCharge.objects.count() == 1
    assert second == first


def test_same_key_with_a_different_amount_is_an_idempotency_error(sandbox, org):
    payment = make_payment(org)
    charge(sandbox, payment)

    result = charge(sandbox, payment, amount=payment.amount + 1)

    assert (result.status, result.code, result.charge_id) == ("error", "idempotency_error", "")
    assert SandboxCharge.objects.count() == 1


def test_same_key_with_a_different_currency_is_an_idempotency_error(sandbox, org):
    payment = make_payment(org)
    charge(sandbox, payment)

    result = charge(sandbox, payment, currency="USD")

    assert (result.status, result.code) == ("error", "idempotency_error")
    assert SandboxCharge.objects.count() == 1


def test_same_key_for_another_payment_is_an_idempotency_error_that_reveals_nothing(sandbox, org, other_org):
    first = charge(sandbox, make_payment(org))

    result = charge(sandbox, make_payment(other_org))

    assert (result.status, result.code) == ("error", "idempotency_error")
    assert first.charge_id not in str(result)
    assert SandboxCharge.objects.count() == 1


def test_currency_is_compared_case_insensitively(sandbox, org):
    payment = make_payment(org, currency="EUR")
    first = charge(sandbox, payment, currency="eur")

    second = charge(sandbox, payment, currency="EUR")

    assert second == first
    assert first.currency == "EUR"


def test_a_non_integer_amount_is_refused_and_charges_nothing(sandbox, org):
    payment = make_payment(org)

    with pytest.raises(ValueError, match="positive integer"):
        charge(sandbox, payment, amount=19.99)

    assert not SandboxCharge.objects.exists()


def test_charge_inside_a_rolled_back_transaction_is_forgotten(sandbox, org):
    # Unlike a real PSP: the ledger lives in the caller's transaction (see charge_off_session).
    payment = make_payment(org)

    with pytest.raises(RuntimeError), transaction.atomic():
        charge(sandbox, payment)
        raise RuntimeError("the worker crashed before committing")

    assert not SandboxCharge.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_charges_with_one_key_record_one_charge(org):
    payment = make_payment(org, last4="4242")
    threads_count = 10
    barrier = threading.Barrier(threads_count)
    results, errors = [], []

    def send():
        try:
            barrier.wait(timeout=10)
            results.append(charge(SandboxProvider(), payment, key="shared-key"))
        except Exception as exc:  # surfaced by the asserts below
            errors.append(exc)
        finally:
            connection.close()  # each thread opened its own connection

    threads = [threading.Thread(target=send) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert SandboxCharge.objects.filter(idempotency_key="shared-key").count() == 1
    assert len(results) == threads_count
    assert {r.charge_id for r in results} == {SandboxCharge.objects.get().charge_id}
    assert {r.status for r in results} == {"succeeded"}


# --- payment state ----------------------------------------------------------------------------------


def test_payment_without_a_charge_is_not_paid(sandbox, org):
    state = sandbox.fetch_payment_state(payment=make_payment(org))

    assert state.paid is False
    assert state.amount_paid == 0


def test_payment_with_only_a_declined_charge_is_not_paid(sandbox, org):
    payment = make_payment(org, last4="9995")
    charge(sandbox, payment)

    assert sandbox.fetch_payment_state(payment=payment).paid is False


def test_payment_is_paid_after_a_successful_charge(sandbox, org):
    payment = make_payment(org)
    result = charge(sandbox, payment)

    state = sandbox.fetch_payment_state(payment=payment)

    assert (state.paid, state.amount_paid, state.currency, state.charge_id) == (True, 1999, "EUR", result.charge_id)


def test_fetching_payment_state_records_nothing(sandbox, org):
    payment = make_payment(org)
    sandbox.fetch_payment_state(payment=payment)
    charge(sandbox, payment)

    sandbox.fetch_payment_state(payment=payment)
    sandbox.fetch_payment_state(payment=payment)

    assert SandboxCharge.objects.count() == 1


def test_payment_state_ignores_another_payments_charge(sandbox, org):
    charge(sandbox, make_payment(org), key="paid-one")

    assert sandbox.fetch_payment_state(payment=make_payment(org)).paid is False


# --- tenancy ----------------------------------------------------------------------------------------


def test_charge_is_recorded_with_the_payments_organization(sandbox, org, other_org):
    acme_payment = make_payment(org)
    globex_payment = make_payment(other_org)

    charge(sandbox, acme_payment, key="acme")
    charge(sandbox, globex_payment, key="globex")

    assert SandboxCharge.objects.get(idempotency_key="acme").organization == org
    assert SandboxCharge.objects.get(idempotency_key="globex").organization == other_org
    assert SandboxCharge.objects.get(idempotency_key="acme").payment == acme_payment


# --- admin ------------------------------------------------------------------------------------------


def test_staff_can_read_sandbox_charges_but_not_add_or_change_them(sandbox, org):
    from django.urls import reverse

    from tests.conftest import login, make_user

    staff = make_user("staff@tinko.test")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client = login(staff)
    result = charge(sandbox, make_payment(org, last4="9995"))
    row = SandboxCharge.objects.get()

    changelist = client.get(reverse("admin:payments_sandboxcharge_changelist"))
    change = client.post(reverse("admin:payments_sandboxcharge_change", args=[row.pk]), {"status": "succeeded"})

    assert changelist.status_code == 200
    assert result.charge_id in changelist.content.decode()
    assert client.get(reverse("admin:payments_sandboxcharge_add")).status_code == 403
    assert change.status_code == 403
    row.refresh_from_db()
    assert row.status == "declined"
