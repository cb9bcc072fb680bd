"""The console's Payments pages: the list (filters, search, keyset pages, CSV) and one payment's detail and actions.

Everyone in the organization reads; members and above operate (retry now,
send a new link, cancel the recovery). Every action goes through
recovery.services, which locks the payment, checks its state and audits.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal

from django.contrib import messages
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications.sending import send_link
from payments import selectors
from payments.forms import PaymentFilterForm
from recovery import messaging
from recovery.models import Channel, Payment
from recovery.services import RecoveryError, cancel_recovery, retry_now, send_recovery_link
from recovery.timeline import payment_timeline
from tinko.currencies import minor_unit_exponent
from tinko.formatting import format_when
from tinko.models import Role
from tinko.services import record_audit
from tinko.tenancy import get_object_for_org, role_required

EXPORT_COLUMNS = [
    "reference", "status", "category", "amount", "currency", "provider", "customer_email", "customer_name",
    "card_brand", "card_last4", "failure_count", "first_failed_at", "last_failed_at", "status_reason",
    "recovered_at", "recovered_amount", "recovered_channel", "created_at",
]


def _filter_form(request) -> PaymentFilterForm:
    form = PaymentFilterForm(request.GET or None, timezone=request.organization.timezone)
    if form.is_bound:
        form.is_valid()
    return form


def _filtered(request, form):
    filters = form.filters() if form.is_bound and form.is_valid() else {}
    return selectors.filtered_payments(request.organization, **filters)


@require_GET
@role_required()
def payment_list(request):
    form = _filter_form(request)
    page = selectors.payment_page(_filtered(request, form), cursor=request.GET.get("after", ""))
    query = request.GET.copy()
    query.pop("after", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "filtered": bool(form.is_bound and any(v for k, v in form.cleaned_data.items())) if form.is_bound else False,
        "first_page": not request.GET.get("after"),
        "can_operate": request.membership.has_role(Role.MEMBER),
    }
    template = "payments/console/_payment_rows.html" if request.htmx and not request.htmx.boosted else "payments/console/list.html"
    return render(request, template, context, status=400 if form.errors else 200)


class _Echo:
    def write(self, value):
        return value


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula; a leading quote keeps them text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _export_rows(payments):
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for p in payments.select_related("customer").order_by("-created_at", "-pk").iterator(chunk_size=2000):
        exponent = minor_unit_exponent(p.currency)
        yield writer.writerow(
            _cell(v)
            for v in [
                p.reference, p.status, p.category, Decimal(p.amount).scaleb(-exponent), p.currency, p.provider,
                p.customer.email if p.customer else "", p.customer.name if p.customer else "",
                p.card_brand, p.card_last4, p.failure_count, p.first_failed_at.isoformat(), p.last_failed_at.isoformat(),
                p.status_reason, p.recovered_at.isoformat() if p.recovered_at else "",
                Decimal(p.recovered_amount).scaleb(-exponent) if p.recovered_amount is not None else "",
                p.recovered_channel, p.created_at.isoformat(),
            ]
        )


@require_GET
@role_required()
def payment_export(request):
    """The filtered set as CSV, streamed row by row (no page limit)."""
    form = _filter_form(request)
    if form.errors:
        return payment_list(request)
    filters = {k: str(v) for k, v in (form.cleaned_data if form.is_bound else {}).items() if v}
    # The file carries customers' contact details: who took it, and which slice, is on the record.
    record_audit(organization=request.organization, action="payments.exported", actor=request.user, request=request,
                 data={"filters": filters})
    response = StreamingHttpResponse(_export_rows(_filtered(request, form)), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="payments-{request.organization.slug}-{stamp}.csv"'
    return response


def _payment(request, pk) -> Payment:
    return get_object_for_org(request.organization, Payment.objects.select_related("customer", "policy"), pk=pk)


def _detail(request, payment, *, new_link_url: str = "", status: int = 200):
    context = {
        "payment": payment,
        "timeline": payment_timeline(payment),
        "can_operate": request.membership.has_role(Role.MEMBER),
        "new_link_url": new_link_url,
        "open": payment.status in Payment.OPEN or payment.status == "exhausted",
        "double_payments": selectors.double_payments(payment),
    }
    response = render(request, "payments/console/detail.html", context, status=status)
    if new_link_url:
        response["Cache-Control"] = "no-store"
    return response


@require_GET
@role_required()
def payment_detail(request, pk):
    return _detail(request, _payment(request, pk))


@require_POST
@role_required(Role.MEMBER)
def payment_retry(request, pk):
    payment = _payment(request, pk)
    try:
        attempt = retry_now(payment=payment, actor=request.user, request=request,
                            override_quiet_hours=request.POST.get("override_quiet_hours") == "on")
    except RecoveryError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("A re-charge is scheduled for %(when)s.") % {"when": format_when(attempt.scheduled_for)})
    return redirect("console:payment_detail", pk=payment.pk)


def _send_new_link(request, payment):
    """A fresh pay link and its e-mail, audited; returns (send result, token). Raises RecoveryError."""
    with transaction.atomic():
        link, token = send_recovery_link(payment=payment, actor=request.user, request=request)
        locked = Payment.objects.select_related("organization", "customer", "policy").get(pk=payment.pk)
        result = send_link(payment=locked, link=link, token=token)
        record_audit(
            organization=request.organization, action="link.sent" if result.sent else "link.not_sent",
            actor=request.user, request=request, target=payment,
            data={"link": link.pk, "channel": Channel.EMAIL, "outcome": result.outcome},
        )
    return result, token


@require_POST
@role_required(Role.MEMBER)
def payment_link(request, pk):
    """A fresh pay link (older ones stop working), e-mailed to the customer when the respect rules allow; shown once here."""
    payment = _payment(request, pk)
    try:
        result, token = _send_new_link(request, payment)
    except RecoveryError as exc:
        messages.error(request, exc.message)
        return redirect("console:payment_detail", pk=payment.pk)
    (messages.success if result.sent else messages.warning)(request, result.outcome)
    payment.refresh_from_db()
    return _detail(request, payment, new_link_url=messaging.pay_url(token))


@require_http_methods(["GET", "POST"])
@role_required(Role.MEMBER)
def payment_cancel(request, pk):
    """GET asks for confirmation; POST stops the recovery."""
    payment = _payment(request, pk)
    if request.method == "GET":
        return render(request, "payments/console/cancel_confirm.html", {"payment": payment})
    try:
        cancel_recovery(payment=payment, actor=request.user, request=request)
    except RecoveryError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The recovery of %(reference)s was cancelled.") % {"reference": payment.reference})
    return redirect("console:payment_detail", pk=payment.pk)


# --- Bulk actions ------------------------------------------------------------------------------

BULK_LIMIT = 100


@dataclass
class BulkOutcome:
    payment: Payment
    ok: bool
    message: str
    link_url: str = ""


def _bulk_payments(request) -> tuple[list[Payment], int]:
    """The selected payments of this organization, in the order shown; and how many ids matched nothing here."""
    ids: list[int] = []
    for raw in request.POST.getlist("ids"):
        try:
            ids.append(int(raw))
        except ValueError:
            continue
    ids = list(dict.fromkeys(ids))
    found = {
        p.pk: p
        for p in Payment.objects.select_related("customer").filter(organization=request.organization, pk__in=ids)
    }
    return [found[i] for i in ids if i in found], len([i for i in ids if i not in found])


def _retry_one(request, payment) -> BulkOutcome:
    attempt = retry_now(payment=payment, actor=request.user, request=request)
    return BulkOutcome(payment, True, _("A re-charge is scheduled for %(when)s.") % {"when": format_when(attempt.scheduled_for)})


def _link_one(request, payment) -> BulkOutcome:
    result, token = _send_new_link(request, payment)
    return BulkOutcome(payment, result.sent, result.outcome, link_url=messaging.pay_url(token))


def _cancel_one(request, payment) -> BulkOutcome:
    cancel_recovery(payment=payment, actor=request.user, request=request)
    return BulkOutcome(payment, True, _("The recovery was cancelled."))


BULK_ACTIONS = {"retry": _retry_one, "link": _link_one, "cancel": _cancel_one}


@require_POST
@role_required(Role.MEMBER)
def payment_bulk(request):
    """Retry now, send a new link or cancel the recovery of the selected payments: each through the same
    service as the single action (same rules, same reasons, same audit entries), one at a time, each in its
    own transaction, so one refusal never undoes the others; the page then says what happened to each.
    Cancelling asks for confirmation first, as the single action does."""
    action = request.POST.get("action", "")
    if action not in BULK_ACTIONS:
        messages.error(request, _("Choose an action: retry now, send a new link or cancel the recovery."))
        return redirect("console:payments")
    payments, unknown = _bulk_payments(request)
    if not payments:
        messages.error(request, _("Select at least one payment."))
        return redirect("console:payments")
    if len(payments) > BULK_LIMIT:
        messages.error(request, _("Select at most %(limit)s payments at a time.") % {"limit": BULK_LIMIT})
        return redirect("console:payments")
    if action == "cancel" and request.POST.get("confirm") != "1":
        return render(request, "payments/console/bulk_cancel_confirm.html", {"payments": payments})
    outcomes = []
    for payment in payments:
        try:
            outcomes.append(BULK_ACTIONS[action](request, payment))
        except RecoveryError as exc:
            outcomes.append(BulkOutcome(payment, False, exc.message))
    done = sum(o.ok for o in outcomes)
    context = {"action": action, "outcomes": outcomes, "done": done, "refused": len(outcomes) - done, "unknown": unknown}
    response = render(request, "payments/console/bulk_result.html", context)
    # New pay links are shown once and never cached.
    response["Cache-Control"] = "no-store"
    return response
