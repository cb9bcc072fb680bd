"""The Payments list's "next attempt" column and its bulk actions: same rules and reasons as the single
actions, a result per payment, roles, CSRF and tenancy."""

from __future__ import annotations

import pytest
from django.test import Client

from recovery.models import AttemptStatus, LinkStatus, Payment, RecoveryAttempt, RecoveryLink, RetryPolicy
from tests.console_recovery.conftest import ingest
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db


def _bulk(client, action, *payments, **extra):
    return client.post("/console/payments/bulk/", {"action": action, "ids": [p.pk for p in payments], **extra})


def _outcomes(response) -> dict[str, tuple[bool, str]]:
    return {o.payment.reference: (o.ok, o.message) for o in response.context["outcomes"]}


def test_list_shows_each_payments_next_attempt(owner_client, org):
    planned = ingest(org, reference="planned")
    cancelled = ingest(org, reference="cancelled")
    owner_client.post(f"/console/payments/{cancelled.pk}/cancel/")
    response = owner_client.get("/console/payments/")
    by_reference = {p.reference: p.next_attempt for p in response.context["page"].payments}
    expected = RecoveryAttempt.objects.filter(payment=planned, status=AttemptStatus.SCHEDULED).order_by("scheduled_for").first()
    assert by_reference["planned"].pk == expected.pk
    assert by_reference["cancelled"] is None
    assert b"Next attempt" in response.content


def test_bulk_retry_reports_each_payment_with_the_single_actions_reasons(member_client, org):
    first = ingest(org, reference="r-1")
    second = ingest(org, reference="r-2")
    closed = ingest(org, reference="r-closed")
    member_client.post(f"/console/payments/{closed.pk}/cancel/")
    response = _bulk(member_client, "retry", first, second, closed)
    assert response.status_code == 200
    outcomes = _outcomes(response)
    assert outcomes["r-1"][0] and outcomes["r-2"][0]
    assert outcomes["r-closed"] == (False, "The payment is cancelled; it cannot be retried.")
    for payment in (first, second):
        attempt = RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED)
        assert attempt.reason.startswith("Re-charge requested by member@acme.test")
    assert AuditEvent.objects.filter(action="payment.retry_requested").count() == 2
    assert response.context["done"] == 2 and response.context["refused"] == 1


def test_bulk_links_are_shown_once_per_payment(member_client, org):
    first = ingest(org, reference="l-1")
    second = ingest(org, reference="l-2")
    RetryPolicy.objects.filter(organization=org).update(quiet_hours_start=None, quiet_hours_end=None)
    response = _bulk(member_client, "link", first, second)
    assert response["Cache-Control"] == "no-store"
    urls = [o.link_url for o in response.context["outcomes"]]
    assert len(urls) == 2 and all("/pay/" in u for u in urls) and urls[0] != urls[1]
    for url in urls:
        assert url in response.content.decode()
    for payment in (first, second):
        assert RecoveryLink.objects.filter(payment=payment, status=LinkStatus.ACTIVE).count() == 1
    assert AuditEvent.objects.filter(action="link.created").count() == 2


def test_bulk_cancel_asks_first_then_cancels_each(member_client, org):
    first = ingest(org, reference="c-1")
    second = ingest(org, reference="c-2")
    confirm = _bulk(member_client, "cancel", first, second)
    assert b"Yes, cancel these recoveries" in confirm.content
    assert set(Payment.objects.values_list("status", flat=True)) == {"recovering"}
    response = _bulk(member_client, "cancel", first, second, confirm="1")
    assert all(ok for ok, _ in _outcomes(response).values())
    assert set(Payment.objects.values_list("status", flat=True)) == {"cancelled"}
    assert AuditEvent.objects.filter(action="payment.cancelled").count() == 2


def test_bulk_cancel_refuses_a_recovered_payment_and_still_cancels_the_others(member_client, org):
    paid = ingest(org, reference="paid")
    Payment.objects.filter(pk=paid.pk).update(status="recovered")
    open_one = ingest(org, reference="open")
    outcomes = _outcomes(_bulk(member_client, "cancel", paid, open_one, confirm="1"))
    assert outcomes["paid"] == (False, "The payment is already recovered; there is nothing to cancel.")
    assert outcomes["open"][0]
    assert Payment.objects.get(pk=open_one.pk).status == "cancelled"


def test_another_organizations_payments_are_not_touched_and_not_named(member_client, org, other_org):
    ours = ingest(org, reference="ours")
    theirs = ingest(other_org, reference="globex-secret")
    response = _bulk(member_client, "cancel", ours, theirs, confirm="1")
    assert list(_outcomes(response)) == ["ours"]
    assert response.context["unknown"] == 1
    assert b"globex-secret" not in response.content
    assert Payment.objects.get(pk=theirs.pk).status == "recovering"


def test_a_viewer_cannot_act_in_bulk_nor_sees_the_checkboxes(viewer_client, org):
    payment = ingest(org)
    assert b'name="ids"' not in viewer_client.get("/console/payments/").content
    assert _bulk(viewer_client, "cancel", payment, confirm="1").status_code == 403
    assert Payment.objects.get(pk=payment.pk).status == "recovering"


def test_bulk_actions_need_the_csrf_token(member, org):
    payment = ingest(org)
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    response = client.post("/console/payments/bulk/", {"action": "cancel", "ids": [payment.pk], "confirm": "1"})
    assert response.status_code == 403
    assert Payment.objects.get(pk=payment.pk).status == "recovering"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "retry"}, "Select at least one payment."),
        ({"action": "retry", "ids": ["x", ""]}, "Select at least one payment."),
        ({"action": "delete", "ids": ["1"]}, "Choose an action"),
    ],
)
def test_bad_bulk_requests_say_what_is_wrong(member_client, org, data, message):
    response = member_client.post("/console/payments/bulk/", data, follow=True)
    assert message in response.content.decode()


def test_a_bulk_action_is_limited_to_a_page_of_payments(member_client, org, monkeypatch):
    from payments import console

    monkeypatch.setattr(console, "BULK_LIMIT", 1)
    first, second = ingest(org, reference="a"), ingest(org, reference="b")
    response = member_client.post("/console/payments/bulk/", {"action": "retry", "ids": [first.pk, second.pk]}, follow=True)
    assert "Select at most 1 payments at a time." in response.content.decode()
    assert not RecoveryAttempt.objects.filter(reason__startswith="Retry requested").exists()
