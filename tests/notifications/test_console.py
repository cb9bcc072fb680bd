"""Console pages: the Outbox (with a clickable pay link in local mode), webhook endpoints, roles and tenancy."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications import webhooks
from notifications.models import Notification, WebhookDelivery, WebhookEndpoint
from recovery import runner
from recovery.models import RecoveryLink
from recovery.timeline import payment_timeline
from tests.notifications.conftest import due_message, ingest
from tinko.models import AuditEvent, hash_token

pytestmark = pytest.mark.django_db


def sent_message(api) -> Notification:
    payment = ingest(api)
    runner.run_attempt(due_message(payment).pk)
    return Notification.objects.get(payment=payment)


def test_outbox_in_local_mode_shows_the_message_and_a_clickable_pay_link(api, owner_client, settings):
    settings.NOTIFICATIONS_CAPTURE = True
    n = sent_message(api)

    listing = owner_client.get(reverse("console:outbox")).content.decode()
    assert reverse("console:outbox_message", args=[n.public_id]) in listing
    page = owner_client.get(reverse("console:outbox_message", args=[n.public_id])).content.decode()
    token = page.split('class="button" href="http://testserver/pay/')[1].split("/")[0]
    assert RecoveryLink.objects.get(token_hash=hash_token(token)) == n.link
    assert "srcdoc=" in page and "Hi Ada," in page


def test_outbox_in_production_hides_the_customers_pay_link(api, owner_client, settings):
    settings.NOTIFICATIONS_CAPTURE = False
    n = sent_message(api)
    page = owner_client.get(reverse("console:outbox_message", args=[n.public_id])).content.decode()
    assert "/pay/…/" in page
    assert "Open the pay link" not in page


def test_outbox_records_suppressed_messages_with_the_reason(api, owner_client):
    payment = ingest(api)
    attempt = due_message(payment)
    payment.customer.opted_out_channels = ["email"]
    payment.customer.save()
    runner.run_attempt(attempt.pk)
    listing = owner_client.get(reverse("console:outbox"), {"status": "suppressed"}).content.decode()
    assert "Suppressed" in listing and "Opted out" in listing


def test_outbox_shows_a_message_waiting_for_its_next_try_and_one_given_up_with_the_reason(api, owner_client):
    from datetime import timedelta

    from django.utils import timezone

    waiting, given_up = sent_message(api), sent_message(api)
    next_try = timezone.now() + timedelta(minutes=10)
    Notification.objects.filter(pk=waiting.pk).update(attempts=2, error="SMTPServerDisconnected: gone",
                                                      next_attempt_at=next_try)
    Notification.objects.filter(pk=given_up.pk).update(
        status="failed", attempts=6, next_attempt_at=None,
        error="Gave up after 6 tries; last: SMTPServerDisconnected: gone",
    )

    listing = owner_client.get(reverse("console:outbox")).content.decode()
    assert "SMTPServerDisconnected: gone" in listing and "Attempts: 2" in listing and "Next try" in listing
    failed = owner_client.get(reverse("console:outbox"), {"status": "failed"}).content.decode()
    assert "Failed" in failed and "Gave up after 6 tries; last: SMTPServerDisconnected: gone" in failed
    page = owner_client.get(reverse("console:outbox_message", args=[waiting.public_id])).content.decode()
    assert "Next try" in page and "SMTPServerDisconnected: gone" in page


def test_another_orgs_message_is_404(api, outsider_client):
    n = sent_message(api)
    assert outsider_client.get(reverse("console:outbox_message", args=[n.public_id])).status_code == 404
    assert n.public_id not in outsider_client.get(reverse("console:outbox")).content.decode()


def test_timeline_lists_messages_and_webhook_deliveries(api, org, owner, settings):
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/hooks", events=[], user=owner)
    n = sent_message(api)
    entries = payment_timeline(n.payment)
    kinds = {(e.kind, e.status) for e in entries}
    assert ("message", "queued") in kinds
    assert ("webhook", "pending") in kinds
    # The engine lists the attempt that sent it too (also kind "message"); this is the message itself.
    message = next(e for e in entries if e.kind == "message" and e.status == "queued")
    assert message.title == "Email first notice to a…@example.com"


# --- Webhooks -----------------------------------------------------------------------------------------------


def test_admin_adds_an_endpoint_and_sees_the_secret_once(owner_client, org):
    response = owner_client.post(reverse("console:webhooks"), {"url": "https://93.184.215.14/hooks", "events": ["payment.recovered"]})
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(organization=org)
    secret = webhooks.endpoint_secret(endpoint)
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert secret not in owner_client.get(reverse("console:webhooks")).content.decode()
    assert endpoint.events == ["payment.recovered"]
    assert AuditEvent.objects.filter(action="webhook_endpoint.created").exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hooks", "https://10.0.0.5/hooks", "https://localhost/x", "not a url"])
def test_invalid_or_private_webhook_url_is_a_form_error_in_production(owner_client, url):
    response = owner_client.post(reverse("console:webhooks"), {"url": url})
    assert response.status_code == 400
    assert not WebhookEndpoint.objects.exists()


def test_viewer_cannot_add_endpoints_or_resend(viewer_client, org, owner, settings):
    assert viewer_client.post(reverse("console:webhooks"), {"url": "https://93.184.215.14/hooks"}).status_code == 403
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    endpoint, _ = webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/", events=[], user=owner)
    delivery = webhooks.send_test_event(endpoint=endpoint)
    assert viewer_client.post(reverse("console:webhook_resend", args=[delivery.pk])).status_code == 403
    assert viewer_client.post(reverse("console:webhook_test", args=[endpoint.pk])).status_code == 403
    assert WebhookDelivery.objects.count() == 1


def test_member_sends_a_test_event_and_resends_a_delivery(member, org, owner, settings):
    from tests.conftest import login

    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    client = login(member)
    endpoint, _ = webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/", events=[], user=owner)
    assert client.post(reverse("console:webhook_test", args=[endpoint.pk])).status_code == 302
    delivery = WebhookDelivery.objects.get()
    assert delivery.message.event_type == "webhook.test"
    assert client.post(reverse("console:webhook_resend", args=[delivery.pk])).status_code == 302
    assert WebhookDelivery.objects.filter(message=delivery.message).count() == 2
    page = client.get(reverse("console:webhook_detail", args=[endpoint.pk])).content.decode()
    assert delivery.message.msg_id in page


def test_another_orgs_endpoint_and_deliveries_are_404(outsider_client, org, owner, settings):
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    endpoint, _ = webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/", events=[], user=owner)
    delivery = webhooks.send_test_event(endpoint=endpoint)
    assert outsider_client.get(reverse("console:webhook_detail", args=[endpoint.pk])).status_code == 404
    assert outsider_client.post(reverse("console:webhook_resend", args=[delivery.pk])).status_code == 404
    assert outsider_client.post(reverse("console:webhook_active", args=[endpoint.pk]), {"active": "0"}).status_code == 404
    endpoint.refresh_from_db()
    assert endpoint.is_active


def test_admin_disables_and_enables_an_endpoint(owner_client, org, owner):
    endpoint, _ = webhooks.create_endpoint(organization=org, url="https://93.184.215.14/hooks", events=[], user=owner)
    owner_client.post(reverse("console:webhook_active", args=[endpoint.pk]), {"active": "0"})
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    owner_client.post(reverse("console:webhook_active", args=[endpoint.pk]), {"active": "1"})
    endpoint.refresh_from_db()
    assert endpoint.is_active


def test_nav_links_to_the_pages(owner_client):
    page = owner_client.get(reverse("console:outbox")).content.decode()
    for name in ("console:outbox", "console:templates", "console:webhooks"):
        assert f'href="{reverse(name)}"' in page


def test_admin_sets_the_default_language_and_whatsapp_templates(owner_client, org):
    from notifications.models import MessagingSettings

    url = reverse("console:notifications_settings")
    data = {"default_locale": "es-MX", "whatsapp_from": "+1 500-555-0009",
            "sid_first_notice": "HX0123456789abcdef0123456789abcdef"}
    assert owner_client.post(url, data).status_code == 302
    saved = MessagingSettings.objects.get(organization=org)
    assert saved.default_locale == "es-MX" and saved.whatsapp_from == "+15005550009"  # stored in E.164
    assert saved.whatsapp_content_sids == {"first_notice": "HX0123456789abcdef0123456789abcdef"}
    assert AuditEvent.objects.filter(action="messaging_settings.updated").exists()


@pytest.mark.parametrize("field, value", [("whatsapp_from", "0155 123"), ("whatsapp_from", "+15551234567"), ("sid_reminder", "HXnope"), ("default_locale", "english!")])
def test_bad_messaging_settings_are_form_errors(owner_client, field, value):
    from notifications.models import MessagingSettings

    data = {"default_locale": "en", field: value}
    assert owner_client.post(reverse("console:notifications_settings"), data).status_code == 400
    assert not MessagingSettings.objects.exists()


def test_viewer_cannot_change_messaging_settings(viewer_client):
    from notifications.models import MessagingSettings

    page = viewer_client.get(reverse("console:notifications_settings")).content.decode()
    assert "<form class=\"card\"" not in page
    assert viewer_client.post(reverse("console:notifications_settings"), {"default_locale": "hi"}).status_code == 403
    assert not MessagingSettings.objects.exists()


def test_templates_page_lists_each_kind_with_its_languages_and_whose_copy_it_is(owner_client, org):
    import re

    from notifications.models import MessageKind, MessageTemplate

    MessageTemplate.objects.create(organization=org, channel="email", kind="reminder", locale="es",
                                   subject="Recordatorio", text="Hola {{ customer_name }}")

    content = owner_client.get(reverse("console:templates")).content.decode()
    email = content[content.index('data-channel="email"'):content.index("</section>", content.index('data-channel="email"'))]

    # One entry per kind of message (named, not a grid of identical "default" links) ...
    assert [label for label in re.findall(r"<h3>([^<]+)</h3>", email)] == [str(k.label) for k in MessageKind]
    assert ">default<" not in content
    # ... each with the organization's languages, and the merchant's own copy marked where there is one.
    reminder = email[email.index(f"<h3>{MessageKind.REMINDER.label}</h3>"):]
    reminder = reminder[:reminder.index("</ul>")]
    assert re.findall(r'data-locale="([^"]+)"', reminder)[:1] == ["en"]
    assert 'data-locale="es">' in reminder
    spanish = reminder[reminder.index('data-locale="es"'):]
    assert spanish.index("Your copy") < spanish.index("</li>")
    assert email.count("Your copy") == 1
