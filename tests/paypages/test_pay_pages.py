"""The customer's pay page: brand, amount, copy, hand-off to checkout, and every end state."""

from __future__ import annotations

import re

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from payments.models import SandboxCharge
from recovery.models import LinkStatus, Payment, RecoveryLink
from recovery.services import cancel_recovery, create_link
from tests.paypages.conftest import make_payment

pytestmark = pytest.mark.django_db


def test_pay_page_shows_brand_amount_and_first_name_only(org, token):
    org.display_name = "Acme Coffee"
    org.accent_color = "#ffdd00"
    org.save()
    response = Client().get(f"/pay/{token}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Acme Coffee" in body
    assert "$49.99" in body
    assert "Hi Ada," in body
    assert "Lovelace" not in body and "order-1@example.com" not in body
    assert "Pro plan, March" in body
    # A light brand colour gets dark text on the button.
    assert "--brand: #ffdd00; --brand-ink: #111111" in body


def test_opening_the_page_counts_the_open(token, link_and_token):
    Client().get(f"/pay/{token}/")
    link = RecoveryLink.objects.get(pk=link_and_token[0].pk)
    assert link.status == LinkStatus.OPENED and link.open_count == 1


@pytest.mark.parametrize(
    ("category", "button"),
    [("expired_card", "Pay with another card"), ("authentication_required", "Confirm and pay"), ("insufficient_funds", "Pay now")],
)
def test_copy_fits_the_decline(org, category, button):
    payment = make_payment(org, reference=f"o-{category}", category=category)
    _, token = create_link(payment=payment)
    assert button in Client().get(f"/pay/{token}/").content.decode()


def test_headers_keep_the_page_private_and_strict(token):
    response = Client().get(f"/pay/{token}/")
    assert response["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response["X-Robots-Tag"]
    assert "no-store" in response["Cache-Control"]
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "form-action 'self'" in csp and "https://checkout.stripe.com" in csp
    assert "unsafe-inline" not in csp
    assert '<meta name="robots" content="noindex, nofollow">' in response.content.decode()


def test_logo_origin_is_the_only_outside_image_source(org, token):
    org.logo_url = "https://cdn.acme.test/logo.png"
    org.save()
    response = Client().get(f"/pay/{token}/")
    assert "img-src 'self' https://cdn.acme.test" in response["Content-Security-Policy"]
    assert 'src="https://cdn.acme.test/logo.png"' in response.content.decode()


def test_language_comes_from_the_customer_and_can_be_switched(org):
    payment = make_payment(org, reference="o-hi", locale="hi-IN", amount=49900, currency="INR")
    _, token = create_link(payment=payment)
    hindi = Client().get(f"/pay/{token}/").content.decode()
    assert 'lang="hi"' in hindi
    assert "अभी भुगतान करें" in hindi  # "Pay now"
    assert "₹499.00" in hindi
    spanish = Client().get(f"/pay/{token}/?lang=es").content.decode()
    assert 'lang="es"' in spanish and "Pagar ahora" in spanish


def test_unknown_token_is_a_plain_404(db):
    response = Client().get("/pay/not-a-real-token/")
    assert response.status_code == 404
    assert b"This page does not exist." in response.content


def test_guessing_tokens_is_rate_limited(db, token, settings):
    settings.TINKO_PAY_MISS_RATE = "3/hour"
    client = Client()
    for i in range(3):
        assert client.get(f"/pay/guess-{i}/").status_code == 404
    # Past the limit even a real token is refused, so guessing learns nothing more.
    response = client.get(f"/pay/{token}/")
    assert response.status_code == 429
    assert response["Retry-After"]


def test_expired_link_shows_the_expired_page(payment):
    link, token = create_link(payment=payment, now=timezone.now() - timedelta(days=3))
    response = Client().get(f"/pay/{token}/")
    assert response.status_code == 410
    assert b"This payment link has expired" in response.content
    assert RecoveryLink.objects.get(pk=link.pk).status == LinkStatus.EXPIRED


def test_cancelled_recovery_shows_nothing_to_pay(payment, token):
    cancel_recovery(payment=payment)
    response = Client().get(f"/pay/{token}/")
    assert response.status_code == 410
    assert b"There is nothing to pay here" in response.content


def test_cancelled_checkout_returns_to_the_page_with_a_note(token):
    body = Client().get(f"/pay/{token}/?cancelled=1").content.decode()
    assert "You left the checkout before paying" in body


def test_checkout_button_hands_off_to_the_sandbox_form(token, site):
    response = Client().post(f"/pay/{token}/checkout/")
    assert response.status_code == 302
    assert response["Location"].startswith(f"http://testserver/pay/{token}/sandbox/?session=")


def test_checkout_for_a_psp_without_checkout_says_so_and_charges_nothing(org, site):
    payment = make_payment(org, reference="o-other", provider="other")
    _, token = create_link(payment=payment)
    response = Client().post(f"/pay/{token}/checkout/")
    assert response.status_code == 503
    assert b"Paying online is not possible right now" in response.content


def _sandbox_form(client, token):
    location = client.post(f"/pay/{token}/checkout/")["Location"].removeprefix("http://testserver")
    page = client.get(location)
    assert page.status_code == 200
    key = page.context["form"]["key"].value()
    return location, key


def test_the_sandbox_form_lists_test_cards_that_do_what_it_says(payment, link_and_token, site):
    from payments.sandbox.cards import TEST_CARDS

    by_number = {card.number: card for card in TEST_CARDS.values()}

    _, token = link_and_token
    client = Client()
    location, _ = _sandbox_form(client, token)
    body = client.get(location).content.decode()
    hint = body[body.index('class="test-cards"'):body.index("</details>", body.index('class="test-cards"'))]

    cards = re.findall(r"<code>([\d ]+)</code> ([^<]+)</li>", hint)
    assert [number for number, _ in cards] == [
        "4242 4242 4242 4242", "4000 0000 0000 9995", "4000 0000 0000 0069", "4000 0025 0000 3155",
    ]
    outcomes = [by_number[number.replace(" ", "")] for number, _ in cards]
    assert [("pays" if c.succeeds else c.decline_code) for c in outcomes] == [
        "pays", "insufficient_funds", "expired_card", "authentication_required",
    ]


def test_paying_with_the_success_card_recovers_the_payment_attributed_to_the_link(payment, link_and_token, site):
    link, token = link_and_token
    client = Client()
    location, key = _sandbox_form(client, token)
    response = client.post(location, {"number": "4242 4242 4242 4242", "expiry": "12/40", "cvc": "123", "key": key})
    assert response.status_code == 302
    back = response["Location"]
    assert back.startswith(f"http://testserver/pay/{token}/return/?sandbox_charge=sbx_ch_")
    done = client.get(back.removeprefix("http://testserver"))
    assert done.status_code == 302 and done["Location"] == f"/pay/{token}/paid/"
    assert b"Payment received" in client.get(done["Location"]).content
    payment.refresh_from_db()
    assert payment.status == "recovered"
    assert payment.recovered_amount == 4999
    assert payment.recovered_channel == "link"
    assert RecoveryLink.objects.get(pk=link.pk).status == LinkStatus.COMPLETED
    # The link now says so instead of offering to pay again.
    assert b"This payment is already paid" in client.get(f"/pay/{token}/").content


def test_declined_card_stays_on_the_form_and_charges_nothing(payment, token, site):
    client = Client()
    location, key = _sandbox_form(client, token)
    response = client.post(location, {"number": "4000 0000 0000 9995", "expiry": "12/40", "cvc": "123", "key": key})
    assert response.status_code == 400
    assert "Your card was declined. There is not enough money on the card." in response.content.decode()
    assert not SandboxCharge.objects.filter(payment=payment, status="succeeded").exists()
    assert Payment.objects.get(pk=payment.pk).status == "recovering"


def test_a_generic_decline_says_so_once(payment, token, site):
    client = Client()
    location, key = _sandbox_form(client, token)
    response = client.post(location, {"number": "4000 0000 0000 0002", "expiry": "12/40", "cvc": "123", "key": key})
    assert response.content.decode().count("Your card was declined.") == 1


def test_double_submit_charges_once(payment, token, site):
    client = Client()
    location, key = _sandbox_form(client, token)
    data = {"number": "4242424242424242", "expiry": "12/40", "cvc": "123", "key": key}
    first = client.post(location, data)
    second = client.post(location, data)
    assert first["Location"] == second["Location"]
    assert SandboxCharge.objects.filter(payment=payment).count() == 1


def test_bad_card_details_are_explained(token, site):
    client = Client()
    location, key = _sandbox_form(client, token)
    response = client.post(location, {"number": "1234", "expiry": "13/99", "cvc": "x", "key": key})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a valid card number." in body and "Enter the expiry as MM/YY." in body
    assert not SandboxCharge.objects.exists()


def test_a_forged_return_is_not_believed(payment, token):
    response = Client().get(f"/pay/{token}/return/?sandbox_charge=sbx_ch_forged")
    assert response.status_code == 302 and "declined=1" in response["Location"]
    assert Payment.objects.get(pk=payment.pk).status == "recovering"


def test_another_payments_charge_does_not_pay_this_one(org, payment, token, site):
    other = make_payment(org, reference="o-2")
    _, other_token = create_link(payment=other)
    client = Client()
    location, key = _sandbox_form(client, other_token)
    paid = client.post(location, {"number": "4242424242424242", "expiry": "12/40", "cvc": "123", "key": key})
    charge_id = paid["Location"].rsplit("=", 1)[1]
    client.get(f"/pay/{token}/return/?sandbox_charge={charge_id}")
    assert Payment.objects.get(pk=payment.pk).status == "recovering"


def test_sandbox_form_refuses_a_forged_session(token):
    assert Client().get(f"/pay/{token}/sandbox/?session=forged").status_code == 404


def test_success_page_of_an_unpaid_payment_goes_back_to_the_pay_page(token):
    response = Client().get(f"/pay/{token}/paid/")
    assert response.status_code == 302 and response["Location"].startswith(f"/pay/{token}/")


def test_committed_translations_are_compiled_and_complete():
    """The .mo files CI serves are the .po files compiled: every string translated, nothing stale."""
    import gettext
    from pathlib import Path

    from babel.messages.pofile import read_po

    base = Path(__file__).resolve().parents[2] / "paypages" / "locale"
    for language in ("hi", "es"):
        with open(base / language / "LC_MESSAGES" / "django.po", "rb") as po:
            catalog = read_po(po)
        compiled = gettext.GNUTranslations(open(base / language / "LC_MESSAGES" / "django.mo", "rb"))
        for message in catalog:
            if message.id:
                assert message.string, f"{language}: {message.id!r} is not translated"
                assert compiled.gettext(message.id) == message.string, f"{language}: recompile django.mo"


def test_pay_pages_set_no_cookies(token, site):
    client = Client(enforce_csrf_checks=True)
    page = client.get(f"/pay/{token}/")
    assert not page.cookies
    # The button works without a CSRF cookie (the browser sends "Origin: null" under no-referrer).
    response = client.post(f"/pay/{token}/checkout/", headers={"Origin": "null"})
    assert response.status_code == 302 and not response.cookies


def test_every_visit_is_counted(token, link_and_token):
    for _ in range(3):
        Client().get(f"/pay/{token}/")
    link = RecoveryLink.objects.get(pk=link_and_token[0].pk)
    assert link.open_count == 3 and link.first_opened_at < link.last_opened_at


def test_confirming_page_polls_until_the_payment_is_recovered(payment, token):
    from django.utils import timezone as tz

    from recovery.transitions import recover

    client = Client()
    waiting = client.get(f"/pay/{token}/status/", headers={"HX-Request": "true"})
    assert waiting.status_code == 200 and b"We are confirming your payment" in waiting.content
    payment.refresh_from_db()
    recover(payment=payment, amount=payment.amount, now=tz.now(), channel="link")
    done = client.get(f"/pay/{token}/status/", headers={"HX-Request": "true"})
    assert done.status_code == 204 and done["HX-Redirect"] == f"/pay/{token}/paid/"
