"""The one retention job: each kind of record goes (or loses its body) after its setting, nothing sooner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from notifications.models import Notification
from payments.models import ProviderSuccess, WebhookMessage
from tinko import crypto, retention, tasks
from tests.payments.conftest import stripe_account  # noqa: F401  (fixture)
from tinko.models import ApiRequestLog, AuditEvent, IdempotencyRecord, OutboundEmail

pytestmark = pytest.mark.django_db


def _age(model, pk, field, days):
    model.objects.filter(pk=pk).update(**{field: timezone.now() - timedelta(days=days)})


def test_webhook_messages_and_unmatched_successes_go_after_their_settings(org, stripe_account):
    old = WebhookMessage.objects.create(provider="stripe", body="{}")
    new = WebhookMessage.objects.create(provider="stripe", body="{}")
    _age(WebhookMessage, old.pk, "received_at", 31)
    _age(WebhookMessage, new.pk, "received_at", 29)
    unmatched = ProviderSuccess.objects.create(organization=org, account=stripe_account, references=" pi_1 ",
                                               charge_id="ch_1", amount=100, currency="EUR", occurred_at=timezone.now())
    recent = ProviderSuccess.objects.create(organization=org, account=stripe_account, references=" pi_2 ",
                                            charge_id="ch_2", amount=100, currency="EUR", occurred_at=timezone.now())
    _age(ProviderSuccess, unmatched.pk, "created_at", 8)
    _age(ProviderSuccess, recent.pk, "created_at", 6)

    done = retention.apply()

    assert list(WebhookMessage.objects.values_list("pk", flat=True)) == [new.pk]
    assert list(ProviderSuccess.objects.values_list("pk", flat=True)) == [recent.pk]
    assert done["webhook messages"] == 1 and done["unmatched provider successes"] == 1


def test_idempotency_records_go_after_a_day(org):
    old = IdempotencyRecord.objects.create(organization=org, key="a", request_hash="x")
    IdempotencyRecord.objects.create(organization=org, key="b", request_hash="x")
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))

    retention.apply()

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["b"]


def test_api_request_logs_go_after_their_setting(org, settings):
    settings.TINKO_RETAIN_API_LOGS_DAYS = 14
    row = {"organization": org, "method": "POST", "path": "/api/v1/x", "status": 201, "duration_ms": 3}
    old = ApiRequestLog.objects.create(**row)
    new = ApiRequestLog.objects.create(**row)
    _age(ApiRequestLog, old.pk, "created_at", 15)
    _age(ApiRequestLog, new.pk, "created_at", 13)

    done = retention.apply()

    assert list(ApiRequestLog.objects.values_list("pk", flat=True)) == [new.pk]
    assert done["API request log"] == 1


def test_sent_email_bodies_and_audit_detail_are_cleared_but_the_records_stay(org, owner):
    sent = OutboundEmail.objects.create(to=["a@x.test"], subject="s", body_encrypted=crypto.encrypt("secret body"),
                                        status="sent")
    queued = OutboundEmail.objects.create(to=["a@x.test"], subject="s", body_encrypted=crypto.encrypt("not yet"))
    for email in (sent, queued):
        _age(OutboundEmail, email.pk, "created_at", 31)
    note = Notification.objects.create(organization=org, channel="email", kind="first_notice", locale="en",
                                       recipient="a@x.test", status="delivered", text_encrypted=crypto.encrypt("t"),
                                       html_encrypted=crypto.encrypt("<p>t</p>"), pay_url_encrypted=crypto.encrypt("u"))
    _age(Notification, note.pk, "created_at", 31)
    audit = AuditEvent.objects.create(organization=org, action="policy.updated", data={"before": {"x": 1}})
    _age(AuditEvent, audit.pk, "created_at", 366)

    retention.apply()

    sent.refresh_from_db(); queued.refresh_from_db(); note.refresh_from_db(); audit.refresh_from_db()  # noqa: E702
    assert sent.body_encrypted == "" and sent.subject == "s"
    assert queued.body_encrypted != ""  # still to be sent
    assert (note.text_encrypted, note.html_encrypted, note.pay_url_encrypted) == ("", "", "")
    assert note.status == "delivered"
    assert audit.data == {} and audit.action == "policy.updated"
    assert retention.apply()["audit detail"] == 0  # nothing left to clear


def test_zero_keeps_forever(settings):
    settings.TINKO_RETAIN_WEBHOOK_MESSAGES_DAYS = 0
    old = WebhookMessage.objects.create(provider="stripe", body="{}")
    _age(WebhookMessage, old.pk, "received_at", 3650)
    retention.apply()
    assert WebhookMessage.objects.filter(pk=old.pk).exists()


def test_another_table_plugs_in_with_one_rule_and_works_in_batches(settings):
    settings.TINKO_RETAIN_TEST_DAYS = 2
    for _ in range(5):
        WebhookMessage.objects.create(provider="razorpay", body="{}")
    WebhookMessage.objects.filter(provider="razorpay").update(received_at=timezone.now() - timedelta(days=3))
    rule = retention.Rule("test", "payments.WebhookMessage", "received_at", "TINKO_RETAIN_TEST_DAYS",
                          where=Q(provider="razorpay"))

    assert retention.apply(rules=[rule], batch_size=2) == {"test": 5}
    assert not WebhookMessage.objects.exists()


def test_the_job_is_periodic():
    from tinko import scheduler

    assert "apply_retention" in {job.name for job in scheduler.registered()}
    tasks.apply_retention()
