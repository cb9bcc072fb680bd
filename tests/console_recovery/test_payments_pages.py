"""The console's Payments list, export and detail, and the actions on a payment, by role and tenant."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications.models import Notification
from recovery.models import AttemptStatus, Customer, LinkStatus, Payment, RecoveryAttempt, RecoveryLink, RetryPolicy
from tests.conftest import always_quiet
from tests.console_recovery.conftest import ingest
from tinko.models import AuditEvent

pytestmark = pytest.mark.django_db


def _refs(response) -> list[str]:
    return [p.reference for p in response.context["page"].payments]


def test_list_shows_the_organizations_payments_newest_first(owner_client, org, other_org):
    first = ingest(org, reference="a-1")
    second = ingest(org, reference="a-2")
    ingest(other_org, reference="globex-1")
    response = owner_client.get("/console/payments/")
    assert response.status_code == 200
    assert _refs(response) == [second.reference, first.reference]
    assert b"globex-1" not in response.content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # A stolen card is never re-charged but the customer is asked for another card; fraud gets nothing.
        ({"status": "recovering"}, {"nsf", "expired", "ex-1"}),
        ({"status": "failed"}, {"striped"}),
        ({"category": "expired_card"}, {"expired"}),
        ({"provider": "stripe"}, {"striped"}),
        ({"q": "ex-"}, {"ex-1"}),
        ({"q": "grace@example.com"}, {"expired"}),
        ({"q": "GRACE@example.com"}, {"expired"}),
        ({"q": "0005"}, {"striped"}),
    ],
)
def test_filters_and_search(owner_client, org, params, expected):
    ingest(org, reference="nsf")
    ingest(org, reference="expired", customer={"email": "grace@example.com"},
           failure={"code": "expired_card", "decline_code": "expired_card"})
    ingest(org, reference="striped", provider="stripe", payment_method={"brand": "amex", "last4": "0005"},
           failure={"code": "card_declined", "decline_code": "fraudulent"})
    ingest(org, reference="ex-1", failure={"code": "card_declined", "decline_code": "stolen_card"})
    response = owner_client.get("/console/payments/", params)
    assert set(_refs(response)) == expected


def test_channel_filter_finds_payments_recovered_through_a_link(owner_client, org):
    paid = ingest(org, reference="paid")
    ingest(org, reference="open")
    Payment.objects.filter(pk=paid.pk).update(status="recovered", recovered_channel="link")
    assert _refs(owner_client.get("/console/payments/", {"channel": "link"})) == ["paid"]


def test_date_range_is_whole_days_in_the_organizations_time_zone(owner_client, org):
    old = ingest(org, reference="old")
    ingest(org, reference="new")
    Payment.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    today = timezone.now().date()
    response = owner_client.get("/console/payments/", {"date_from": (today - timedelta(days=1)).isoformat()})
    assert _refs(response) == ["new"]


def test_a_backwards_date_range_is_a_clear_error(owner_client, org):
    response = owner_client.get("/console/payments/", {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert response.status_code == 400
    assert b"The start date is after the end date." in response.content


def test_keyset_pages_cover_every_payment_once(owner_client, org, settings):
    import payments.selectors as selectors

    refs = [ingest(org, reference=f"p-{i:02d}").reference for i in range(7)]
    # Two share a timestamp: the id breaks the tie.
    Payment.objects.filter(reference__in=["p-03", "p-04"]).update(created_at=timezone.now())
    seen, cursor = [], ""
    for _ in range(10):
        page = selectors.payment_page(selectors.filtered_payments(org), cursor=cursor, size=3)
        seen += [p.reference for p in page.payments]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(refs) and len(seen) == len(set(seen))


def test_next_page_link_and_a_mangled_cursor(owner_client, org):
    for i in range(3):
        ingest(org, reference=f"q-{i}")
    import payments.selectors as selectors

    page = selectors.payment_page(selectors.filtered_payments(org), size=2)
    second = owner_client.get("/console/payments/", {"after": page.next_cursor})
    assert _refs(second) == ["q-0"]
    assert owner_client.get("/console/payments/", {"after": "%%%garbage"}).status_code == 200


def test_csv_export_streams_the_filtered_set(owner_client, org, other_org):
    ingest(org, reference="=HYPERLINK(evil)")
    ingest(org, reference="expired", failure={"code": "expired_card", "decline_code": "expired_card"})
    ingest(other_org, reference="globex")
    response = owner_client.get("/console/payments/export.csv", {"category": "insufficient_funds"})
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][0] == "reference"
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(evil)"]
    assert rows[1][3] == "49.99" and rows[1][6] == "ada@example.com"
    event = AuditEvent.objects.get(action="payments.exported")
    assert event.data == {"filters": {"category": "insufficient_funds"}}


def test_detail_shows_the_timeline(owner_client, org):
    payment = ingest(org, reference="t-1", failure={"code": "expired_card", "decline_code": "expired_card"})
    response = owner_client.get(f"/console/payments/{payment.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    kinds = [e.kind for e in response.context["timeline"]]
    assert "failure" in kinds and "message" in kinds
    assert "Payment failed: expired card" in body
    assert "Planned: Message by Email #1" in body


def test_timeline_reads_as_words_money_and_local_times(owner_client, org, owner):
    import re

    from recovery.services import report_paid

    payment = ingest(org, reference="t-words", amount=4999, currency="USD")
    report_paid(payment=payment, amount=4999, actor=owner)
    timeline = owner_client.get(f"/console/payments/{payment.pk}/").content.decode().split('id="timeline-heading"')[1]

    # The audit entry of "paid outside Tinko": money, not minor units; no "None" for the missing attempt.
    assert "Reported paid outside Tinko" in timeline and "$49.99" in timeline
    assert "4999" not in timeline and "None" not in timeline and "payment.reported_paid" not in timeline
    # Times to the minute in the organization's zone (Acme: Europe/Berlin), never ISO strings or "UTC" stamps.
    assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", re.sub(r'datetime="[^"]*"', "", timeline))
    assert "(Europe/Berlin)" in timeline
    # Codes in words: the failure's category, the kinds and states as badges.
    assert "Payment failed: insufficient funds" in timeline
    assert ">Planned<" in timeline and ">Failure<" in timeline


def test_list_and_detail_show_category_labels_not_codes(owner_client, org):
    payment = ingest(org, reference="t-label")
    listing = owner_client.get("/console/payments/").content.decode().split("<tbody")[1]
    detail = owner_client.get(f"/console/payments/{payment.pk}/").content.decode()
    assert "Insufficient funds" in listing and "insufficient_funds" not in listing
    assert "<dd>Insufficient funds</dd>" in detail


def test_other_organizations_payment_is_404(owner_client, other_org):
    payment = ingest(other_org, reference="globex-secret")
    assert owner_client.get(f"/console/payments/{payment.pk}/").status_code == 404
    assert owner_client.post(f"/console/payments/{payment.pk}/cancel/").status_code == 404
    assert Payment.objects.get(pk=payment.pk).status != "cancelled"


def test_viewer_sees_no_actions_and_cannot_post_them(viewer_client, org):
    payment = ingest(org, reference="v-1")
    body = viewer_client.get(f"/console/payments/{payment.pk}/").content.decode()
    assert "Retry now" not in body and "Send a new link" not in body and "Cancel recovery" not in body
    for action in ("retry", "link", "cancel"):
        assert viewer_client.post(f"/console/payments/{payment.pk}/{action}/").status_code == 403
    assert Payment.objects.get(pk=payment.pk).status == "recovering"
    assert not RecoveryLink.objects.filter(payment=payment).exists()


def test_member_retries_now(member_client, org):
    payment = ingest(org, reference="r-1")
    response = member_client.post(f"/console/payments/{payment.pk}/retry/")
    assert response.status_code == 302
    attempt = RecoveryAttempt.objects.filter(payment=payment, status=AttemptStatus.SCHEDULED).get()
    assert attempt.reason.startswith("Re-charge requested by member@acme.test")
    assert AuditEvent.objects.filter(action="payment.retry_requested", actor_label="member@acme.test").exists()


def test_retry_now_inside_quiet_hours_waits_for_their_end(member_client, org):
    payment = ingest(org, reference="r-1")
    always_quiet(payment)
    member_client.post(f"/console/payments/{payment.pk}/retry/")
    attempt = RecoveryAttempt.objects.filter(payment=payment, status=AttemptStatus.SCHEDULED).get()
    assert attempt.scheduled_for > timezone.now() + timedelta(hours=23)
    assert "moved to the end of the customer's quiet hours" in attempt.reason


def test_a_person_may_override_quiet_hours_and_the_timeline_says_so(member_client, org):
    payment = ingest(org, reference="r-1")
    always_quiet(payment)
    member_client.post(f"/console/payments/{payment.pk}/retry/", {"override_quiet_hours": "on"})
    attempt = RecoveryAttempt.objects.filter(payment=payment, status=AttemptStatus.SCHEDULED).get()
    assert attempt.scheduled_for <= timezone.now()
    assert "member@acme.test chose to override them" in attempt.reason
    page = member_client.get(f"/console/payments/{payment.pk}/").content.decode()
    assert "chose to override them" in page


def _no_quiet_hours(payment):
    # Messages are held back in the customer's quiet hours; these tests run at any hour.
    RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=None, quiet_hours_end=None)


def test_member_sends_a_new_link_shown_once_and_emailed(member_client, org, run_jobs, django_capture_on_commit_callbacks):
    payment = ingest(org, reference="l-1")
    _no_quiet_hours(payment)
    with django_capture_on_commit_callbacks(execute=True):
        response = member_client.post(f"/console/payments/{payment.pk}/link/")
    url = response.context["new_link_url"]
    assert "/pay/" in url and url in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    run_jobs()
    assert any(url in m.body for m in mail.outbox if m.to == ["ada@example.com"])
    assert RecoveryLink.objects.filter(payment=payment, status=LinkStatus.ACTIVE).count() == 1
    assert url not in member_client.get(f"/console/payments/{payment.pk}/").content.decode()
    assert Notification.objects.get(payment=payment, link__isnull=False).status == "sent"


def test_a_new_link_for_a_customer_who_opted_out_is_not_emailed_and_says_why(member_client, org, run_jobs):
    payment = ingest(org, reference="l-2")
    _no_quiet_hours(payment)
    Customer.objects.filter(pk=payment.customer_id).update(opted_out_channels=["email"])
    response = member_client.post(f"/console/payments/{payment.pk}/link/")
    run_jobs()
    assert "/pay/" in response.context["new_link_url"]
    assert "Not sent" in response.content.decode()
    assert not [m for m in mail.outbox if m.to == ["ada@example.com"]]
    suppressed = Notification.objects.get(payment=payment)
    assert suppressed.status == "suppressed" and suppressed.reason
    assert AuditEvent.objects.filter(action="link.not_sent", target_id=str(payment.pk)).exists()


def test_cancel_asks_first_then_cancels_and_audits(member_client, org):
    payment = ingest(org, reference="c-1")
    confirm = member_client.get(f"/console/payments/{payment.pk}/cancel/")
    assert b"Yes, cancel the recovery" in confirm.content
    assert Payment.objects.get(pk=payment.pk).status == "recovering"
    member_client.post(f"/console/payments/{payment.pk}/cancel/")
    assert Payment.objects.get(pk=payment.pk).status == "cancelled"
    assert AuditEvent.objects.filter(action="payment.cancelled", target_id=str(payment.pk)).exists()
    # The timeline now carries the audit entry.
    assert b"Recovery cancelled" in member_client.get(f"/console/payments/{payment.pk}/").content


def test_retry_refused_with_the_reason_when_not_possible(member_client, org):
    payment = ingest(org, reference="x-1")
    member_client.post(f"/console/payments/{payment.pk}/cancel/")
    response = member_client.post(f"/console/payments/{payment.pk}/retry/", follow=True)
    assert b"it cannot be retried" in response.content
