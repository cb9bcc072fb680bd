"""The console's Customers pages: the list (search, a state filter, keyset pages) and one customer's
payments, messages and cards.

Everyone in the organization reads; every lookup is scoped to the current
organization (a customer of another one is a 404).
"""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET

from notifications.models import Notification
from payments import selectors
from payments.forms import CustomerFilterForm
from recovery.models import Customer
from tinko.tenancy import get_object_for_org, role_required

MESSAGES_SHOWN = 50


@require_GET
@role_required()
def customer_list(request):
    form = CustomerFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    page = selectors.customer_page(
        selectors.filtered_customers(request.organization, q=filters.get("q", ""), state=filters.get("state", "")),
        cursor=request.GET.get("after", ""),
    )
    query = request.GET.copy()
    query.pop("after", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "filtered": any(filters.values()),
        "first_page": not request.GET.get("after"),
    }
    template = (
        "payments/console/_customer_rows.html" if request.htmx and not request.htmx.boosted
        else "payments/console/customers.html"
    )
    return render(request, template, context, status=400 if form.errors else 200)


@require_GET
@role_required()
def customer_detail(request, pk):
    customer = get_object_for_org(request.organization, Customer, pk=pk)
    messages = list(
        Notification.objects.filter(organization=request.organization, customer=customer)
        .select_related("payment")
        .order_by("-created_at")[:MESSAGES_SHOWN]
    )
    context = {
        "customer": customer,
        "payments": selectors.customer_payments(customer),
        "cards": selectors.customer_cards(customer),
        "messages_sent": messages,
        "messages_limit": MESSAGES_SHOWN,
    }
    return render(request, "payments/console/customer_detail.html", context)
