"""The console's Customers list and a customer's page: search, filters, pages, and tenancy."""

from __future__ import annotations

import pytest

from notifications.models import Notification
from recovery.models import Customer, Payment
from tests.console_recovery.conftest import ingest

pytestmark = pytest.mark.django_db


def _names(response) -> list[str]:
    return [row.customer.name for row in response.context["page"].rows]


def _customer(org, cid, name, email, **extra):
    return ingest(org, customer={"id": cid, "name": name, "email": email, "timezone": "UTC"}, **extra).customer


def test_list_shows_the_organizations_customers_newest_first_with_their_counts(owner_client, org, other_org):
    ada = _customer(org, "cus_ada", "Ada Lovelace", "ada@example.com")
    ingest(org, customer={"id": "cus_ada", "email": "ada@example.com"})
    grace = _customer(org, "cus_grace", "Grace Hopper", "grace@example.com")
    Payment.objects.filter(customer=grace).update(status="recovered")
    _customer(other_org, "cus_globex", "Hank Scorpio", "hank@globex.example")
    response = owner_client.get("/console/customers/")
    assert response.status_code == 200
    assert _names(response) == ["Grace Hopper", "Ada Lovelace"]
    rows = {row.customer.pk: row for row in response.context["page"].rows}
    assert (rows[ada.pk].payments, rows[ada.pk].open, rows[ada.pk].recovered) == (2, 2, 0)
    assert (rows[grace.pk].payments, rows[grace.pk].open, rows[grace.pk].recovered) == (1, 0, 1)
    assert b"Hank Scorpio" not in response.content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "GRACE@example.com"}, ["Grace Hopper"]),
        ({"q": "cus_ada"}, ["Ada Lovelace"]),
        ({"q": "ada"}, ["Ada Lovelace"]),
        ({"q": "+14155550123"}, ["Alan Turing"]),
        ({"q": "nobody"}, []),
        ({"state": "recovered"}, ["Grace Hopper"]),
        ({"state": "open"}, ["Alan Turing", "Ada Lovelace"]),
    ],
)
def test_search_and_filters(owner_client, org, params, expected):
    _customer(org, "cus_ada", "Ada Lovelace", "ada@example.com")
    grace = _customer(org, "cus_grace", "Grace Hopper", "grace@example.com")
    Payment.objects.filter(customer=grace).update(status="recovered")
    ingest(org, customer={"name": "Alan Turing", "phone": "+14155550123"})
    assert _names(owner_client.get("/console/customers/", params)) == expected


def test_pages_follow_the_cursor_without_gaps_or_repeats(owner_client, org, monkeypatch):
    from payments import selectors

    monkeypatch.setattr(selectors, "CUSTOMER_PAGE_SIZE", 2)
    for i in range(5):
        _customer(org, f"cus_{i}", f"Customer {i}", f"c{i}@example.com")
    seen, url = [], "/console/customers/"
    while True:
        page = owner_client.get(url).context["page"]
        seen += [row.customer.name for row in page.rows]
        if not page.next_cursor:
            break
        url = f"/console/customers/?after={page.next_cursor}"
    assert seen == [f"Customer {i}" for i in reversed(range(5))]


def test_an_invalid_filter_is_a_clear_error(owner_client, org):
    response = owner_client.get("/console/customers/", {"state": "bogus"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content


def test_detail_shows_the_customers_payments_messages_and_cards(owner_client, org):
    first = ingest(org, reference="ada-1")
    second = ingest(org, reference="ada-2", payment_method={"brand": "mastercard", "last4": "4444", "exp_month": 1,
                                                             "exp_year": 2031})
    ingest(org, reference="someone-else", customer={"id": "cus_other", "email": "other@example.com"})
    customer = first.customer
    Notification.objects.create(organization=org, payment=first, customer=customer, channel="email",
                                recipient="ada@example.com", subject="Your payment to Acme failed", status="sent")
    response = owner_client.get(f"/console/customers/{customer.pk}/")
    assert response.status_code == 200
    assert [p.reference for p in response.context["payments"]] == [second.reference, first.reference]
    assert [(c.brand, c.last4, c.payments) for c in response.context["cards"]] == [("mastercard", "4444", 1),
                                                                                   ("visa", "4242", 1)]
    assert [n.subject for n in response.context["messages_sent"]] == ["Your payment to Acme failed"]
    assert b"someone-else" not in response.content


def test_the_payment_page_links_to_its_customer(owner_client, org):
    payment = ingest(org)
    response = owner_client.get(f"/console/payments/{payment.pk}/")
    assert f'href="/console/customers/{payment.customer_id}/"'.encode() in response.content


def test_a_viewer_reads_customers(viewer_client, org):
    customer = ingest(org).customer
    assert viewer_client.get("/console/customers/").status_code == 200
    assert viewer_client.get(f"/console/customers/{customer.pk}/").status_code == 200


def test_another_organizations_customer_is_a_404(owner_client, outsider_client, org, other_org):
    theirs = _customer(other_org, "cus_globex", "Hank Scorpio", "hank@globex.example")
    assert owner_client.get(f"/console/customers/{theirs.pk}/").status_code == 404
    ours = ingest(org).customer
    assert outsider_client.get(f"/console/customers/{ours.pk}/").status_code == 404
    assert Customer.objects.count() == 2


def test_signed_out_visitors_are_sent_to_sign_in(client, org):
    response = client.get("/console/customers/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
