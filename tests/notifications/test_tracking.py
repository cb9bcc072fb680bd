"""Opens and clicks: the open pixel, the ESP's engagement events, and the pay link being opened."""

from __future__ import annotations

import base64
import json

import pytest

from tinko import crypto
from notifications import delivery, tracking
from notifications.models import Notification
from recovery import runner
from tests.notifications.conftest import due_message, ingest

pytestmark = pytest.mark.django_db


def sent(api) -> Notification:
    payment = ingest(api)
    runner.run_attempt(due_message(payment).pk)
    n = Notification.objects.get(payment=payment)
    delivery.deliver(n.pk)
    n.refresh_from_db()
    return n


def test_open_pixel_counts_opens_and_is_an_image(api, client):
    n = sent(api)
    html = crypto.decrypt(n.html_encrypted)
    pixel = f"/m/o/{n.public_id}.gif"
    assert f"http://testserver{pixel}" in html
    response = client.get(pixel)
    client.get(pixel)
    assert response["Content-Type"] == "image/gif" and response["Cache-Control"] == "no-store"
    n.refresh_from_db()
    assert n.opens == 2 and n.first_opened_at is not None


def test_unknown_pixel_still_answers_an_image_and_counts_nothing(client):
    response = client.get("/m/o/unknown.gif")
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"


def test_opening_the_pay_link_counts_a_click_on_its_message(api, client):
    n = sent(api)
    token = crypto.decrypt(n.pay_url_encrypted).rstrip("/").rsplit("/", 1)[1]
    client.get(f"/pay/{token}/")
    client.get(f"/pay/{token}/")
    n.refresh_from_db()
    assert n.clicks == 2 and n.first_clicked_at is not None


@pytest.mark.parametrize("record, field", [("Open", "opens"), ("Click", "clicks")])
def test_esp_engagement_events_are_counted(api, client, settings, record, field):
    n = sent(api)
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret-value"}
    payload = {"RecordType": record, "MessageID": "x", "Recipient": "ada@example.com", "ReceivedAt": "2026-11-28T09:00:00Z",
               "Metadata": {"notification": n.public_id}, "Tag": "", "Platform": "Desktop", "UserAgent": "Mail",
               "OriginalLink": "http://testserver/pay/x/", "FirstOpen": True}
    auth = base64.b64encode(b"hooks:s3cret-value").decode()
    response = client.post("/webhooks/messages/anymail/postmark/tracking/", json.dumps(payload),
                           content_type="application/json", headers={"Authorization": f"Basic {auth}"})
    assert response.status_code == 200
    n.refresh_from_db()
    assert getattr(n, field) == 1


def test_esp_delivered_event_moves_the_message_on_and_a_late_sent_does_not_undo_it(api, client, settings):
    from tests.notifications.conftest import postmark_payload

    n = sent(api)
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret-value"}
    auth = base64.b64encode(b"hooks:s3cret-value").decode()
    client.post("/webhooks/messages/anymail/postmark/tracking/",
                json.dumps(postmark_payload("postmark_delivery.json", n.public_id)),
                content_type="application/json", headers={"Authorization": f"Basic {auth}"})
    n.refresh_from_db()
    assert n.status == "delivered"
    assert tracking.record_status(n, "sent") is False
    n.refresh_from_db()
    assert n.status == "delivered"


def test_visiting_the_pay_page_counts_a_click_on_the_message_that_carried_it(api, client):
    n = sent(api)
    pay_path = crypto.decrypt(n.pay_url_encrypted).split("://", 1)[1].split("/", 1)[1]
    assert client.get(f"/{pay_path}").status_code == 200
    client.get(f"/{pay_path}")
    n.refresh_from_db()
    assert n.clicks == 2 and n.first_clicked_at is not None
