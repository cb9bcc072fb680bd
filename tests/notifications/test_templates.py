"""Templates: the sandbox, the shipped copy, choice by locale and decline, SMS segments, the console editor."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tinko import crypto
from notifications import rendering
from notifications.models import MessageTemplate, MessagingSettings, Notification
from recovery import runner
from tests.notifications.conftest import due_message, ingest
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db

EDIT = reverse("console:template_edit", args=["email", "first_notice", "en"])
PREVIEW = reverse("console:template_preview", args=["email", "first_notice", "en"])


@pytest.mark.parametrize("source, problem", [
    ("Hi {{ customer.email }}", "Unknown variable: customer"),
    ("{% if secret %}x{% endif %}", "Unknown variable: secret"),
    ("{{ amount|default:settings }}", "Unknown variable: settings"),
    ("{% load static %}", "Template error"),
    ("{% include 'base.html' %}", "Template error"),
    ("{% debug %}", "Template error"),
    ("{% if amount %}unclosed", "Template error"),
])
def test_sandbox_refuses_unknown_variables_and_tags(source, problem):
    with pytest.raises(rendering.TemplateProblem, match=problem):
        rendering.compile_template(source)


def test_loop_and_with_variables_are_known_inside_their_block():
    rendering.compile_template("{% with first=customer_name %}{{ first }}{% endwith %}{% for c in amount %}{{ c }}{{ forloop.counter }}{% endfor %}")


@pytest.mark.parametrize("text, expected", [
    ("a" * 160, (1, "GSM-7")), ("a" * 161, (2, "GSM-7")), ("a" * 306, (2, "GSM-7")), ("a" * 307, (3, "GSM-7")),
    ("€" * 80, (1, "GSM-7")), ("€" * 81, (2, "GSM-7")), ("ó" * 70, (1, "UCS-2")), ("भ" * 71, (2, "UCS-2")),
    ("😀" * 35, (1, "UCS-2")), ("😀" * 36, (2, "UCS-2")),
])
def test_sms_segments_count_gsm7_and_ucs2(text, expected):
    assert rendering.sms_segments(text) == expected


def test_customer_locale_picks_the_language_and_amount_format(api):
    payment = ingest(api, currency="EUR", customer={"id": "c1", "email": "ana@example.com", "name": "Ana María",
                                                     "locale": "es-MX", "timezone": "UTC"})
    runner.run_attempt(due_message(payment).pk)
    notification = Notification.objects.get(payment=payment)
    assert notification.locale == "es"
    assert notification.subject.startswith("Tu pago a Acme")
    text = crypto.decrypt(notification.text_encrypted)
    assert "Hola, Ana:" in text and "49,99" in text and "actualiza los datos de tu tarjeta" in text
    assert "Darse de baja de estos correos: http://testserver/m/unsubscribe/" in text
    assert '<html lang="es">' in crypto.decrypt(notification.html_encrypted)


def test_shipped_email_reads_as_a_letter_with_an_expiry_to_the_minute_in_the_customers_zone(api):
    import re
    from zoneinfo import ZoneInfo

    payment = ingest(api, customer={"id": "c1", "email": "sam@example.com", "name": "Sam Okafor",
                                    "locale": "en", "timezone": "Asia/Kolkata"})
    runner.run_attempt(due_message(payment).pk)
    notification = Notification.objects.get(payment=payment)
    text = crypto.decrypt(notification.text_encrypted)
    greeting, first_line = text.split("\n\n")[:2]
    assert greeting == "Hi Sam,"
    assert first_line[0].isupper(), first_line
    expiry = re.search(r"The link works until (.+)\.", text).group(1)
    # e.g. "Dec 5, 2026, 7:48 PM (India Standard Time)": minutes, no seconds, and the zone said.
    assert expiry.endswith("(India Standard Time)"), expiry
    assert not re.search(r"\d:\d\d:\d\d", expiry), expiry
    assert notification.link.expires_at.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%-I:%M") in expiry


@pytest.mark.parametrize("kind", ["first_notice", "reminder", "final_notice", "authentication_needed", "card_expiring"])
@pytest.mark.parametrize("locale", ["en", "es"])
def test_every_shipped_email_starts_its_first_sentence_with_a_capital(kind, locale):
    from notifications.defaults import PHRASES

    assert PHRASES[locale]["intro"][kind][0].isupper()


def test_unknown_customer_locale_falls_back_to_the_orgs(api, org):
    MessagingSettings.objects.create(organization=org, default_locale="hi")
    payment = ingest(api, customer={"id": "c1", "email": "x@example.com", "locale": "fr", "timezone": "UTC"})
    runner.run_attempt(due_message(payment).pk)
    assert Notification.objects.get(payment=payment).locale == "hi"


def test_copy_fits_the_decline(api):
    payment = ingest(api, failure={"decline_code": "authentication_required"})
    attempt = due_message(payment)
    assert attempt.message_kind == "authentication_needed"
    runner.run_attempt(attempt.pk)
    n = Notification.objects.get(payment=payment)
    assert n.subject == "Please confirm your payment to Acme"
    assert "approve the payment with your bank" in crypto.decrypt(n.text_encrypted)
    assert "Confirm payment" in crypto.decrypt(n.html_encrypted)


def test_merchants_own_template_is_used(api, org):
    MessageTemplate.objects.create(organization=org, channel="email", kind="first_notice", locale="en",
                                   subject="{{ merchant_name }}: action needed", text="Dear {{ customer_name }}, pay at {{ pay_url }}")
    payment = ingest(api)
    runner.run_attempt(due_message(payment).pk)
    n = Notification.objects.get(payment=payment)
    assert n.subject == "Acme: action needed"
    assert crypto.decrypt(n.text_encrypted).startswith("Dear Ada, pay at http://testserver/pay/")


def form(**overrides):
    data = {"subject": "Pay {{ amount }}", "text": "Hi {{ customer_name }}: {{ pay_url }}", "html": "<p>Hi {{ customer_name }}</p>",
            "button_label": "Pay now", "action": "save"}
    data.update(overrides)
    return data


def test_admin_saves_a_template_and_it_is_audited(owner_client, org):
    response = owner_client.post(EDIT, form())
    assert response.status_code == 302
    template = MessageTemplate.objects.get(organization=org)
    assert template.subject == "Pay {{ amount }}"
    assert AuditEvent.objects.filter(organization=org, action="template.updated").exists()


@pytest.mark.parametrize("field, value, message", [
    ("text", "Hi {{ customer_name", None),  # plain text for Django: allowed
    ("text", "Hi {{ password }}", "Unknown variable: password"),
    ("subject", "{% if %}", "Template error"),
    ("html", "<p>{% for %}</p>", "Template error"),
])
def test_broken_template_is_a_form_error_and_nothing_is_saved(owner_client, org, field, value, message):
    response = owner_client.post(EDIT, form(**{field: value}))
    if message is None:
        assert response.status_code == 302
        return
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not MessageTemplate.objects.exists()


def test_live_preview_renders_sample_data_and_shows_errors(viewer_client):
    ok = viewer_client.post(PREVIEW, form(), headers={"HX-Request": "true"})
    assert ok.status_code == 200
    assert "Hi Ada: http://testserver/pay/example/" in ok.content.decode()
    bad = viewer_client.post(PREVIEW, form(text="{{ nope }}"), headers={"HX-Request": "true"})
    assert "Unknown variable: nope" in bad.content.decode()
    assert not MessageTemplate.objects.exists()


def test_sms_preview_shows_segments(owner_client):
    url = reverse("console:template_preview", args=["sms", "reminder", "hi"])
    response = owner_client.post(url, {"text": "{{ merchant_name }}: भुगतान करें {{ pay_url }}"})
    assert "UCS-2: 1 SMS segment" in response.content.decode()


def test_send_test_to_me_goes_to_the_users_address_and_the_outbox(owner_client, org, django_capture_on_commit_callbacks, run_jobs):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(EDIT, form(action="test"))
    assert response.status_code == 302
    run_jobs()
    (message,) = mail.outbox
    assert message.to == ["owner@acme.test"] and message.subject == "Pay €49.99"
    n = Notification.objects.get()
    assert n.is_test and n.status == "sent"
    assert not MessageTemplate.objects.exists()  # a test does not save


def test_send_test_sms_needs_a_valid_phone_number(owner_client, twilio):
    url = reverse("console:template_edit", args=["sms", "first_notice", "en"])
    response = owner_client.post(url, {"text": "{{ pay_url }}", "test_recipient": "12345", "action": "test"})
    assert response.status_code == 400
    assert "E.164" in response.content.decode()
    assert not Notification.objects.exists()


def test_viewer_sees_no_edit_controls_and_cannot_save(viewer_client):
    page = viewer_client.get(EDIT)
    assert page.status_code == 200
    assert 'value="save"' not in page.content.decode()
    assert viewer_client.post(EDIT, form()).status_code == 403
    assert not MessageTemplate.objects.exists()


def test_templates_of_another_org_are_not_visible(owner_client, other_org):
    MessageTemplate.objects.create(organization=other_org, channel="email", kind="first_notice", locale="en",
                                   subject="Globex secret subject", text="x")
    assert "Globex secret subject" not in owner_client.get(EDIT).content.decode()


def test_unknown_channel_or_kind_is_404(owner_client):
    assert owner_client.get(reverse("console:template_edit", args=["fax", "first_notice", "en"])).status_code == 404
    assert owner_client.get(reverse("console:template_edit", args=["email", "bogus", "en"])).status_code == 404
