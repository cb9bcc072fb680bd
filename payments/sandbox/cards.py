"""The sandbox's test cards: what a charge on each card answers (off-session re-charges and the card form).

The outcome of a charge is decided by the payment's card, the way Stripe's
test cards behave: ``Payment.card_last4`` picks the row below. Every last4 is
unique, so the brand the merchant reported does not change the outcome (it may
be spelled "MasterCard", "mc", ...); the brand column says which network's
codes a row carries. A last4 that is not in the table (or none) succeeds,
like a plain test card.

last4  brand       test number        status     code                     decline_code                 advice_code        MAC  raw
-----  ----------  -----------------  ---------  -----------------------  ---------------------------  -----------------  ---  ---
4242   visa        4242424242424242   succeeded
4444   mastercard  5555555555554444   succeeded
0005   amex        378282246310005    succeeded
0002   visa        4000000000000002   declined   card_declined            generic_decline              try_again_later
9995   visa        4000000000009995   declined   card_declined            insufficient_funds           try_again_later
9996   visa        4000000000099996   recovers: the payment's first sandbox charge declines like 9995, later ones succeed
9987   visa        4000000000009987   declined   card_declined            lost_card                    do_not_try_again
9979   visa        4000000000009979   declined   card_declined            stolen_card                  do_not_try_again
0069   visa        4000000000000069   declined   expired_card             expired_card                 confirm_card_data
0127   visa        4000000000000127   declined   incorrect_cvc            incorrect_cvc                confirm_card_data
0119   visa        4000000000000119   declined   processing_error         processing_error             try_again_later
3155   visa        4000002500003155   declined   authentication_required  authentication_required      (requires_action=True)
0341   visa        4000000000000341   declined   card_declined            do_not_honor                 try_again_later
0303   mastercard  5555555555040303   declined   card_declined            do_not_honor                 do_not_try_again   03   05
2525   mastercard  5555555555022525   declined   card_declined            insufficient_funds           try_again_later    25   51
1001   visa        4000000000091001   declined   card_declined            revocation_of_authorization  do_not_try_again        R1
0408   visa        4000000000000408   answer lost: charges (succeeded), but the first answer per key is an error
other  any         (or no card)       succeeded

MAC is the Mastercard Merchant Advice Code (``network_advice_code``: 03 = never
try again, 25 = retry after 24 hours); raw is the issuer's raw response code
(``network_decline_code``; Visa R1 = the cardholder revoked the authorisation).
The same table, with messages, is in payments/sandbox/README.md.

The "recovers" card (9996) counts the payment's earlier sandbox charges: with
none it declines for insufficient funds, with one or more it succeeds. That
lets a test or a local demo watch a recovery succeed on its second re-charge.

The "answer lost" card (0408) is a PSP that timed out after taking the money:
a new key records a succeeded charge but answers ``status="error"``
(``api_connection_error``); asking again with the same key returns the
success. It shows why a re-run must reuse the idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass

from payments.models import SandboxCharge, SandboxChargeStatus
from recovery.psp import DECLINE_FIELDS


@dataclass(frozen=True)
class SandboxCard:
    """One row of the test-card table: what a charge on this card answers."""

    last4: str
    brand: str
    number: str
    succeeds: bool = False
    code: str = ""
    decline_code: str = ""
    advice_code: str = ""
    network_advice_code: str = ""
    network_decline_code: str = ""
    message: str = ""
    # Declines while the payment has no earlier sandbox charge, then succeeds.
    recovers: bool = False
    # Charges, but the first answer for a key is lost (status "error").
    answer_lost: bool = False


_DECLINED = "Your card was declined."
_NSF = "Your card has insufficient funds."

TEST_CARDS: dict[str, SandboxCard] = {
    card.last4: card
    for card in [
        SandboxCard("4242", "visa", "4242424242424242", succeeds=True),
        SandboxCard("4444", "mastercard", "5555555555554444", succeeds=True),
        SandboxCard("0005", "amex", "378282246310005", succeeds=True),
        SandboxCard(
            "0002", "visa", "4000000000000002",
            code="card_declined", decline_code="generic_decline", advice_code="try_again_later", message=_DECLINED,
        ),
        SandboxCard(
            "9995", "visa", "4000000000009995",
            code="card_declined", decline_code="insufficient_funds", advice_code="try_again_later", message=_NSF,
        ),
        SandboxCard(
            "9996", "visa", "4000000000099996", recovers=True,
            code="card_declined", decline_code="insufficient_funds", advice_code="try_again_later", message=_NSF,
        ),
        SandboxCard(
            "9987", "visa", "4000000000009987",
            code="card_declined", decline_code="lost_card", advice_code="do_not_try_again", message=_DECLINED,
        ),
        SandboxCard(
            "9979", "visa", "4000000000009979",
            code="card_declined", decline_code="stolen_card", advice_code="do_not_try_again", message=_DECLINED,
        ),
        SandboxCard(
            "0069", "visa", "4000000000000069",
            code="expired_card", decline_code="expired_card", advice_code="confirm_card_data",
            message="Your card has expired.",
        ),
        SandboxCard(
            "0127", "visa", "4000000000000127",
            code="incorrect_cvc", decline_code="incorrect_cvc", advice_code="confirm_card_data",
            message="Your card's security code is incorrect.",
        ),
        SandboxCard(
            "0119", "visa", "4000000000000119",
            code="processing_error", decline_code="processing_error", advice_code="try_again_later",
            message="An error occurred while processing your card. Try again in a little bit.",
        ),
        SandboxCard(
            "3155", "visa", "4000002500003155",
            code="authentication_required", decline_code="authentication_required",
            message="Your card was declined. This transaction requires authentication.",
        ),
        SandboxCard(
            "0341", "visa", "4000000000000341",
            code="card_declined", decline_code="do_not_honor", advice_code="try_again_later", message=_DECLINED,
        ),
        SandboxCard(
            "0303", "mastercard", "5555555555040303",
            code="card_declined", decline_code="do_not_honor", advice_code="do_not_try_again",
            network_advice_code="03", network_decline_code="05", message=_DECLINED,
        ),
        SandboxCard(
            "2525", "mastercard", "5555555555022525",
            code="card_declined", decline_code="insufficient_funds", advice_code="try_again_later",
            network_advice_code="25", network_decline_code="51", message=_NSF,
        ),
        SandboxCard(
            "1001", "visa", "4000000000091001",
            code="card_declined", decline_code="revocation_of_authorization", advice_code="do_not_try_again",
            network_decline_code="R1", message=_DECLINED,
        ),
        SandboxCard("0408", "visa", "4000000000000408", succeeds=True, answer_lost=True),
    ]
}

# A card missing from the table behaves like a plain succeeding test card.
UNKNOWN_CARD = SandboxCard("", "", "", succeeds=True)

def card_for(last4: str) -> SandboxCard:
    """The table row for ``last4``; unknown or empty → a card that succeeds."""
    return TEST_CARDS.get((last4 or "").strip(), UNKNOWN_CARD)


def set_outcome(charge: SandboxCharge, card: SandboxCard, *, succeeds: bool) -> None:
    """Mark ``charge`` succeeded, or declined with ``card``'s codes."""
    if succeeds:
        charge.status = SandboxChargeStatus.SUCCEEDED
        return
    charge.status = SandboxChargeStatus.DECLINED
    for name in DECLINE_FIELDS:
        setattr(charge, name, getattr(card, name))
