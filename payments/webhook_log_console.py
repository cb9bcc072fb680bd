"""Developers → Logs, provider webhooks: the PSP webhook requests Tinko stored for this organization
(payments/inbox.py keeps each before handling it), newest first, filterable; one request's headers and body.

Everyone in the organization reads. Bodies are shown through the API log's masking
(tinko/api/request_log.py): a PSP's event may carry card or customer details.
"""

from __future__ import annotations

from django.db.models import Q
from django.shortcuts import render
from django.views.decorators.http import require_GET

from payments.forms import WebhookLogFilterForm
from payments.models import WebhookMessage
from tinko.api.request_log import mask_body, mask_text, pretty
from tinko.pagination import keyset_context
from tinko.tenancy import get_object_for_org, role_required

PAGE_SIZE = 50
# Shown masked whole: they prove who signed the request, and are no one's business after.
SIGNATURE_HEADERS = {"stripe-signature", "x-razorpay-signature"}


def filtered_webhooks(organization, *, q: str = "", status: str = "", provider: str = ""):
    messages = WebhookMessage.objects.filter(organization=organization).defer("body", "headers")
    q = (q or "").strip()
    if q:
        messages = messages.filter(Q(received_event_id=q) | Q(event_type=q))
    if status:
        messages = messages.filter(status=status)
    if provider:
        messages = messages.filter(provider=provider)
    return messages


@require_GET
@role_required()
def psp_webhook_logs(request):
    form = WebhookLogFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    messages = filtered_webhooks(request.organization, **filters).select_related("payment")
    return render(request, "payments/console/webhook_logs.html", {
        "form": form, "filtered": any(filters.values()),
        **keyset_context(request, messages, size=PAGE_SIZE, field="received_at"),
    }, status=400 if form.errors else 200)


@require_GET
@role_required()
def psp_webhook_log_detail(request, pk):
    message = get_object_for_org(request.organization, WebhookMessage.objects.select_related("payment", "account"), pk=pk)
    headers = {
        name: ("••••" if name.lower() in SIGNATURE_HEADERS else mask_text(value))
        for name, value in (message.headers or {}).items()
    }
    return render(request, "payments/console/webhook_log_detail.html", {
        "message": message, "headers": sorted(headers.items()), "body": pretty(mask_body(message.body)),
    })
