"""Reads behind the console's payment pages. Every query is scoped to one organization.

The list pages by keyset on (created_at, id), newest first, so page 5,000 costs
what page 1 does; each filter has an index that starts with the organization
(payments/models.py), so a filtered page reads only the rows it shows.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils.dateparse import parse_datetime

from payments.models import Customer, Payment, PaymentStatus
from tinko.models import AuditEvent

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


def encode_cursor(payment: Payment) -> str:
    raw = f"{payment.created_at.isoformat()}|{payment.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    """(created_at, id) of the last row of the previous page; None for a missing or mangled cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, pk = raw.split("|")
        moment = parse_datetime(when)
        return (moment, int(pk)) if moment is not None and moment.tzinfo is not None else None
    except (ValueError, UnicodeDecodeError):
        return None


def payment_page(payments: QuerySet[Payment], *, cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page of ``payments``, newest first, after ``cursor``."""
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        created_at, pk = after
        # The first condition is the index range; the second breaks ties on equal times.
        payments = payments.filter(created_at__lte=created_at).filter(Q(created_at__lt=created_at) | Q(pk__lt=pk))
    rows = list(payments.select_related("customer").order_by("-created_at", "-pk")[: size + 1])
    next_cursor = encode_cursor(rows[size - 1]) if len(rows) > size else ""
    return Page(payments=rows[:size], next_cursor=next_cursor)


def double_payments(payment) -> list[dict]:
    """The "possible double payment" alerts of ``payment``: {first_charge, second_charge, amount, currency, at}."""
    events = AuditEvent.objects.filter(
        organization_id=payment.organization_id, action="payment.possible_double_payment",
        target_type="payments.payment", target_id=str(payment.pk),
    ).order_by("created_at")
    return [{**(event.data or {}), "at": event.created_at} for event in events]


def stripe_retrying(organization, *, limit: int = 5) -> tuple[int, list[Payment]]:
    """Payments under recovery whose Stripe invoice Stripe will also retry by itself: (how many, the first few)."""
    payments = Payment.objects.filter(
        organization=organization, provider="stripe", status__in=[*Payment.OPEN, PaymentStatus.EXHAUSTED],
        provider_retry_at__isnull=False,
    )
    return payments.count(), list(payments.order_by("provider_retry_at")[:limit])
