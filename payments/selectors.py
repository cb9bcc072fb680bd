"""Reads behind the console's payment pages. Every query is scoped to one organization.

The list pages by keyset on (created_at, id), newest first, so page 5,000 costs
what page 1 does; each filter has an index that starts with the organization
(recovery/models.py), so a filtered page reads only the rows it shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.db.models.functions import Collate, Lower

from recovery.models import Customer, Payment, PaymentStatus, RecoveryAttempt
from tinko.models import AuditEvent
from tinko.pagination import keyset_page

PAGE_SIZE = 50
_LAST4 = re.compile(r"\d{4}")


@dataclass(frozen=True)
class Page:
    payments: list[Payment]
    next_cursor: str


def filtered_payments(organization, *, status="", category="", provider="", channel="", date_from=None, date_to=None,
                      q="") -> QuerySet[Payment]:
    """The organization's payments matching the filters (each optional). ``date_to`` is exclusive."""
    payments = Payment.objects.filter(organization=organization)
    if status:
        payments = payments.filter(status=status)
    if category:
        payments = payments.filter(category=category)
    if provider:
        payments = payments.filter(provider=provider)
    if channel:
        payments = payments.filter(recovered_channel=channel)
    if date_from:
        payments = payments.filter(created_at__gte=date_from)
    if date_to:
        payments = payments.filter(created_at__lt=date_to)
    q = (q or "").strip()
    if q:
        payments = payments.filter(_search(organization, q))
    return payments


def _search(organization, q: str) -> Q:
    """Search by what the text looks like: an e-mail address, four digits (last4), else a reference (prefix)."""
    if "@" in q:
        customers = (
            Customer.objects.alias(email_lower=Lower("email"))
            .filter(organization=organization, email_lower=q.lower())
            .values("pk")
        )
        return Q(customer_id__in=customers)
    if _LAST4.fullmatch(q):
        return Q(card_last4=q) | Q(reference=q)
    return Q(reference__startswith=q)


def payment_page(payments: QuerySet[Payment], *, cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page of ``payments``, newest first, after ``cursor``."""
    rows, next_cursor = keyset_page(payments.select_related("customer"), cursor=cursor, size=size)
    upcoming = next_attempts([p.pk for p in rows])
    for p in rows:
        p.next_attempt = upcoming.get(p.pk)
    return Page(payments=rows, next_cursor=next_cursor)


def next_attempts(payment_ids: list[int]) -> dict[int, RecoveryAttempt]:
    """Each payment's earliest planned or running attempt (a re-charge or a message), by payment id.

    One query for a page: the attempts' (payment, sequence) index, a few rows per payment.
    """
    if not payment_ids:
        return {}
    attempts = (
        RecoveryAttempt.objects.filter(payment_id__in=payment_ids, status__in=RecoveryAttempt.ACTIVE)
        .order_by("payment_id", "scheduled_for", "sequence")
        .distinct("payment_id")
        .only("payment_id", "kind", "channel", "message_kind", "status", "scheduled_for")
    )
    return {a.payment_id: a for a in attempts}


# --- Customers -------------------------------------------------------------------------------

CUSTOMER_PAGE_SIZE = 50


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer
    payments: int
    open: int
    recovered: int
    last_failed_at: datetime | None


@dataclass(frozen=True)
class CustomerPage:
    rows: list[CustomerRow]
    next_cursor: str


def _name_prefix_expression():
    # In byte order ("C"), as the PostgreSQL index customer_org_name_prefix (migration 0007), which then
    # serves LIKE 'prefix%' whatever the database's collation; SQLite (local mode) has no such collation.
    name = Lower("name")
    return Collate(name, "C") if connection.vendor == "postgresql" else name


def filtered_customers(organization, *, q: str = "", state: str = "") -> QuerySet[Customer]:
    """The organization's customers matching a search and a state (each optional).

    The search goes by what the text looks like, each through an index that starts
    with the organization: an e-mail address (exact, any case), a phone number
    (exact), else the merchant's customer id (exact) or the beginning of a name
    (any case).
    """
    customers = Customer.objects.filter(organization=organization)
    q = (q or "").strip()
    if q:
        if "@" in q:
            customers = customers.alias(email_lower=Lower("email")).filter(email_lower=q.lower())
        elif q.startswith("+") and q[1:].isdigit():
            customers = customers.filter(key="phone:" + q)
        else:
            customers = customers.alias(name_lower=_name_prefix_expression()).filter(
                Q(key="id:" + q) | Q(name_lower__startswith=q.lower())
            )
    if state == "open":
        customers = customers.filter(
            Exists(Payment.objects.filter(customer=OuterRef("pk"), status__in=Payment.OPEN))
        )
    elif state == "recovered":
        customers = customers.filter(Exists(Payment.objects.filter(customer=OuterRef("pk"), status="recovered")))
    return customers


def customer_page(customers: QuerySet[Customer], *, cursor: str = "", size: int = CUSTOMER_PAGE_SIZE) -> CustomerPage:
    """One page of ``customers``, newest first, after ``cursor``, with each one's payment counts.

    The counts are one grouped query over the page's customers (the payment's customer
    index), never a count over the whole table.
    """
    found, next_cursor = keyset_page(customers, cursor=cursor, size=size)
    counts = {
        row["customer_id"]: row
        for row in Payment.objects.filter(customer_id__in=[c.pk for c in found])
        .values("customer_id")
        .annotate(
            payments=Count("pk"),
            open=Count("pk", filter=Q(status__in=Payment.OPEN)),
            recovered=Count("pk", filter=Q(status="recovered")),
            last_failed_at=Max("last_failed_at"),
        )
        .order_by()
    }
    rows = [
        CustomerRow(
            customer=c,
            payments=counts.get(c.pk, {}).get("payments", 0),
            open=counts.get(c.pk, {}).get("open", 0),
            recovered=counts.get(c.pk, {}).get("recovered", 0),
            last_failed_at=counts.get(c.pk, {}).get("last_failed_at"),
        )
        for c in found
    ]
    return CustomerPage(rows=rows, next_cursor=next_cursor)


@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    payments: int
    last_used_at: datetime


def customer_cards(customer: Customer) -> list[Card]:
    """The cards the customer's payments were made with, most recently used first."""
    rows = (
        Payment.objects.filter(customer=customer, organization_id=customer.organization_id)
        .exclude(card_last4="")
        .values("card_brand", "card_last4", "card_exp_month", "card_exp_year")
        .annotate(payments=Count("pk"), last_used_at=Max("last_failed_at"))
        .order_by("-last_used_at")
    )
    return [
        Card(brand=r["card_brand"], last4=r["card_last4"], exp_month=r["card_exp_month"], exp_year=r["card_exp_year"],
             payments=r["payments"], last_used_at=r["last_used_at"])
        for r in rows
    ]


def customer_payments(customer: Customer, *, limit: int = 100) -> list[Payment]:
    return list(
        Payment.objects.filter(customer=customer, organization_id=customer.organization_id)
        .order_by("-created_at", "-pk")[:limit]
    )


def double_payments(payment) -> list[dict]:
    """The "possible double payment" alerts of ``payment``: {first_charge, second_charge, amount, currency, at}."""
    events = AuditEvent.objects.filter(
        organization_id=payment.organization_id, action="payment.possible_double_payment",
        target_type="recovery.payment", target_id=str(payment.pk),
    ).order_by("created_at")
    return [{**(event.data or {}), "at": event.created_at} for event in events]


def stripe_retrying(organization, *, limit: int = 5) -> tuple[int, list[Payment]]:
    """Payments under recovery whose Stripe invoice Stripe will also retry by itself: (how many, the first few)."""
    payments = Payment.objects.filter(
        organization=organization, provider="stripe", status__in=[*Payment.OPEN, PaymentStatus.EXHAUSTED],
        provider_retry_at__isnull=False,
    )
    return payments.count(), list(payments.order_by("provider_retry_at")[:limit])
