"""Console pages: the Outbox, the template editor, webhook endpoints.

Viewers read; members send tests and resend deliveries; admins change
templates and endpoints. Every lookup goes through get_object_for_org.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from notifications import channels, compose, rendering, webhooks
from notifications.defaults import default_copy
from notifications.models import (
    MESSAGE_CHANNELS,
    SHIPPED_LOCALES,
    DeliveryStatus,
    MessageTemplate,
    Notification,
    NotificationStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)
from recovery.models import Channel, MessageKind
from tinko import crypto, ratelimit
from tinko.formatting import format_language
from tinko import phones
from tinko.models import Role
from tinko.pagination import keyset_context
from tinko.services import record_audit
from tinko.tenancy import get_object_for_org, require_role, role_required

CHANNEL_KEYS = [c for c, _label in MESSAGE_CHANNELS]


# --- Outbox -----------------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def outbox(request):
    queryset = Notification.objects.filter(organization=request.organization).select_related("payment").order_by("-created_at", "-pk")
    channel = request.GET.get("channel", "")
    status = request.GET.get("status", "")
    if channel in CHANNEL_KEYS:
        queryset = queryset.filter(channel=channel)
    if status in NotificationStatus.values:
        queryset = queryset.filter(status=status)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    return render(request, "notifications/console/outbox.html", {
        "page": page, "channel": channel, "status": status, "channels": MESSAGE_CHANNELS,
        "statuses": NotificationStatus.choices, "capturing": channels.capturing(),
    })


@role_required(Role.VIEWER)
def outbox_message(request, public_id):
    n = get_object_for_org(request.organization, Notification.objects.select_related("payment"), public_id=public_id)
    text = crypto.decrypt(n.text_encrypted) if n.text_encrypted else ""
    html = crypto.decrypt(n.html_encrypted) if n.html_encrypted else ""
    pay_url = crypto.decrypt(n.pay_url_encrypted) if n.pay_url_encrypted else ""
    if not channels.capturing() and pay_url:
        # Outside local mode the link is the customer's: opening it here would count as theirs.
        hidden = pay_url.rsplit("/", 2)[0] + "/…/"
        text, html, pay_url = text.replace(pay_url, hidden), html.replace(pay_url, hidden), ""
    response = render(request, "notifications/console/outbox_message.html", {
        "n": n, "text": text, "html": html, "pay_url": pay_url, "capturing": channels.capturing(),
        "language_name": format_language(n.locale),
    })
    add_never_cache_headers(response)
    return response


# --- Templates ---------------------------------------------------------------------------------------------


class TemplateForm(forms.Form):
    subject = forms.CharField(max_length=300, required=False, label=_("Subject"))
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), label=_("Text"))
    html = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), required=False, label=_("HTML body"),
                           help_text=_("Placed in your branded layout, above the button."))
    button_label = forms.CharField(max_length=200, required=False, label=_("Button label"))
    test_recipient = forms.CharField(max_length=254, required=False, label=_("Send the test to"),
                                     help_text=_("For SMS and WhatsApp: your phone number in E.164 form, e.g. +14155550123."))

    def __init__(self, *args, channel: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.channel = channel
        if channel != Channel.EMAIL:
            for name in ("subject", "html", "button_label"):
                del self.fields[name]
        else:
            self.fields["subject"].required = True
            del self.fields["test_recipient"]

    def _check(self, name, *, html=False):
        value = self.cleaned_data.get(name, "")
        try:
            # Rendered, not only compiled: the sandbox's limits on loops, output and time show here.
            rendering.check_template(value, html=html)
        except rendering.TemplateProblem as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_subject(self):
        return self._check("subject")

    def clean_text(self):
        return self._check("text")

    def clean_html(self):
        return self._check("html", html=True)

    def clean_button_label(self):
        return self._check("button_label")

    def clean_test_recipient(self):
        return phones.clean(self.cleaned_data.get("test_recipient", ""))

    def copy(self):
        data = self.cleaned_data
        return MessageTemplate(channel=self.channel, subject=data.get("subject", ""), text=data["text"],
                               html=data.get("html", ""), button_label=data.get("button_label", ""))


def _locales(organization) -> list[str]:
    custom = MessageTemplate.objects.filter(organization=organization).values_list("locale", flat=True).distinct()
    return SHIPPED_LOCALES + sorted(set(custom) - set(SHIPPED_LOCALES))


def _valid_key(channel, kind, locale):
    if channel not in CHANNEL_KEYS or kind not in MessageKind.values or not (0 < len(locale) <= 35):
        raise Http404("No such template.")


# What each kind of message is for, shown on the Templates page.
KIND_PURPOSES = {
    MessageKind.FIRST_NOTICE: _("The first message after a payment fails, asking the customer to pay or act."),
    MessageKind.REMINDER: _("Sent while the payment is still unpaid, after the first notice."),
    MessageKind.FINAL_NOTICE: _("The last message before the recovery ends."),
    MessageKind.AUTHENTICATION_NEEDED: _("When the bank asks the customer to confirm the payment (3-D Secure)."),
    MessageKind.CARD_EXPIRING: _("When the card on file has expired or is about to."),
}


@role_required(Role.VIEWER)
def templates(request):
    """The kinds of message per channel, each with its languages and whether the copy is Tinko's or the merchant's."""
    organization = request.organization
    custom = {(t.channel, t.kind, t.locale): t for t in MessageTemplate.objects.filter(organization=organization)}
    locales = _locales(organization)
    sending = channels.enabled_channels()
    groups = []
    for channel, channel_label in MESSAGE_CHANNELS:
        kinds = [
            {
                "kind": kind.value, "label": kind.label, "purpose": KIND_PURPOSES.get(kind, ""),
                "languages": [
                    {"locale": loc, "name": format_language(loc), "custom": custom.get((channel, kind.value, loc))}
                    for loc in locales
                ],
            }
            for kind in MessageKind
        ]
        groups.append({"channel": channel, "label": channel_label, "can_send": channel in sending, "kinds": kinds})
    return render(request, "notifications/console/templates.html", {
        "groups": groups, "variables": rendering.CONTEXT_VARIABLES,
        "can_edit": request.membership.has_role(Role.ADMIN),
    })


@role_required(Role.VIEWER)
def template_edit(request, channel, kind, locale):
    _valid_key(channel, kind, locale)
    organization = request.organization
    existing = MessageTemplate.objects.filter(organization=organization, channel=channel, kind=kind, locale=locale).first()
    shipped = default_copy(channel=channel, kind=kind, locale=locale)
    source = existing or shipped
    initial = {"subject": source.subject, "text": source.text, "html": source.html, "button_label": source.button_label}
    form = TemplateForm(initial=initial, channel=channel)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "save")
        require_role(request, Role.MEMBER if action == "test" else Role.ADMIN)
        if not _preview_allowed(request):
            return _too_many_previews(request)
        if action == "reset":
            if existing is not None:
                existing.delete()
                record_audit(organization=organization, action="template.reset", request=request,
                             data={"channel": channel, "kind": kind, "locale": locale})
            messages.success(request, _("The template is back to Tinko's default copy."))
            return redirect("console:template_edit", channel=channel, kind=kind, locale=locale)
        form = TemplateForm(request.POST, channel=channel)
        if form.is_valid():
            if action == "test":
                recipient = request.user.email if channel == Channel.EMAIL else form.cleaned_data.get("test_recipient", "")
                if not recipient:
                    form.add_error("test_recipient", _("Enter the phone number to send the test to."))
                else:
                    compose.send_test(organization=organization, channel=channel, kind=kind, locale=locale,
                                       recipient=recipient, copy=form.copy(), user=request.user)
                    messages.success(request, _("A test message is on its way to %(recipient)s. See the Outbox.") % {"recipient": channels.mask(recipient)})
                    return redirect("console:template_edit", channel=channel, kind=kind, locale=locale)
            else:
                data = form.cleaned_data
                template, created = MessageTemplate.objects.update_or_create(
                    organization=organization, channel=channel, kind=kind, locale=locale,
                    defaults={"subject": data.get("subject", ""), "text": data["text"], "html": data.get("html", ""),
                              "button_label": data.get("button_label", ""), "updated_at": timezone.now(),
                              "updated_by": request.user},
                )
                record_audit(organization=organization, action="template.updated", request=request, target=template,
                             data={"channel": channel, "kind": kind, "locale": locale, "created": created})
                messages.success(request, _("Template saved."))
                return redirect("console:template_edit", channel=channel, kind=kind, locale=locale)
        if form.errors:
            status = 400
    preview = _preview(organization, form, channel, locale) if not form.is_bound else None
    return render(request, "notifications/console/template_edit.html", {
        "form": form, "channel": channel, "kind": kind, "locale": locale, "existing": existing,
        "channel_label": dict(MESSAGE_CHANNELS)[channel], "kind_label": MessageKind(kind).label,
        "language_name": format_language(locale), "purpose": KIND_PURPOSES.get(kind, ""),
        "variables": rendering.CONTEXT_VARIABLES, "preview": preview,
        "can_edit": request.membership.has_role(Role.ADMIN), "can_test": request.membership.has_role(Role.MEMBER),
        "preview_url": reverse("console:template_preview", args=[channel, kind, locale]),
    }, status=status)


def _preview_allowed(request) -> bool:
    """Previews, checks and test sends render merchant templates: a per-user rate (TINKO_PREVIEW_RATE)."""
    return ratelimit.hit("preview", f"user:{request.user.pk}", settings.TINKO_PREVIEW_RATE)[0]


def _too_many_previews(request):
    response = render(request, "429.html", status=429)
    response["Retry-After"] = "60"
    return response


def _preview(organization, form, channel, locale):
    data = form.cleaned_data if form.is_bound else form.initial
    copy = MessageTemplate(channel=channel, subject=data.get("subject", ""), text=data.get("text", ""),
                           html=data.get("html", ""), button_label=data.get("button_label", ""))
    try:
        return rendering.render_message(copy=copy, channel=channel, context=compose.sample_context(organization, locale=locale),
                                        unsubscribe_url="#unsubscribe" if channel == Channel.EMAIL else "", locale=locale)
    except rendering.TemplateProblem as exc:
        return {"error": str(exc)}


@require_POST
@role_required(Role.VIEWER)
def template_preview(request, channel, kind, locale):
    """The live preview (htmx): renders the unsaved form with sample data; errors are shown, nothing is stored."""
    _valid_key(channel, kind, locale)
    if not _preview_allowed(request):
        return _too_many_previews(request)
    form = TemplateForm(request.POST, channel=channel)
    preview = _preview(request.organization, form, channel, locale) if form.is_valid() else None
    return render(request, "notifications/console/_preview.html", {"form": form, "preview": preview, "channel": channel})


# --- Webhooks -----------------------------------------------------------------------------------------------

SUBSCRIBABLE = [(t.value, format_lazy("{} — {}", t.value, t.label)) for t in WebhookEventType if t != WebhookEventType.TEST]


class EndpointForm(forms.Form):
    url = forms.URLField(max_length=500, label=_("URL"), assume_scheme="https")
    description = forms.CharField(max_length=200, required=False, label=_("Description"))
    events = forms.MultipleChoiceField(choices=SUBSCRIBABLE, required=False, widget=forms.CheckboxSelectMultiple,
                                       help_text=_("None ticked: every event."))

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            webhooks.check_url(url)
        except webhooks.UnsafeURL as exc:
            raise forms.ValidationError(str(exc)) from None
        return url


@role_required(Role.VIEWER)
def webhooks_page(request):
    organization = request.organization
    can_manage = request.membership.has_role(Role.ADMIN)
    form = EndpointForm() if can_manage else None
    created = secret = None
    status = 200
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        form = EndpointForm(request.POST)
        if form.is_valid():
            created, secret = webhooks.create_endpoint(
                organization=organization, url=form.cleaned_data["url"], events=form.cleaned_data["events"],
                description=form.cleaned_data["description"], user=request.user, request=request,
            )
            form = EndpointForm()
        else:
            status = 400
    endpoints = WebhookEndpoint.objects.filter(organization=organization).order_by("-created_at")
    response = render(request, "notifications/console/webhooks.html", {
        "endpoints": endpoints, "form": form, "can_manage": can_manage, "created": created, "secret": secret,
    }, status=status)
    if secret:
        add_never_cache_headers(response)
        response["Cache-Control"] += ", no-store"
    return response


@role_required(Role.VIEWER)
def webhook_detail(request, pk):
    endpoint = get_object_for_org(request.organization, WebhookEndpoint, pk=pk)
    deliveries = (WebhookDelivery.objects.filter(endpoint=endpoint).select_related("message").order_by("-created_at", "-pk"))
    page = Paginator(deliveries, 50).get_page(request.GET.get("page"))
    return render(request, "notifications/console/webhook_detail.html", {
        "endpoint": endpoint, "page": page, "can_operate": request.membership.has_role(Role.MEMBER),
        "can_manage": request.membership.has_role(Role.ADMIN),
    })


@require_POST
@role_required(Role.MEMBER)
def webhook_test(request, pk):
    endpoint = get_object_for_org(request.organization, WebhookEndpoint, pk=pk)
    if not endpoint.is_active:
        messages.error(request, _("The endpoint is disabled; enable it first."))
    else:
        webhooks.send_test_event(endpoint=endpoint, user=request.user, request=request)
        messages.success(request, _("A test event is on its way; its delivery appears below."))
    return redirect("console:webhook_detail", pk=endpoint.pk)


@require_POST
@role_required(Role.ADMIN)
def webhook_active(request, pk):
    endpoint = get_object_for_org(request.organization, WebhookEndpoint, pk=pk)
    active = request.POST.get("active") == "1"
    if active != endpoint.is_active:
        if active:
            try:
                webhooks.check_url(endpoint.url)
            except webhooks.UnsafeURL as exc:
                messages.error(request, str(exc))
                return redirect("console:webhook_detail", pk=endpoint.pk)
        webhooks.set_active(endpoint=endpoint, active=active, user=request.user, request=request)
        messages.success(request, _("Endpoint enabled.") if active else _("Endpoint disabled."))
    return redirect("console:webhook_detail", pk=endpoint.pk)


@require_POST
@role_required(Role.MEMBER)
def webhook_resend(request, pk):
    delivery = get_object_for_org(
        request.organization, WebhookDelivery.objects.select_related("endpoint", "message"), pk=pk,
        org_path="endpoint__organization",
    )
    if not delivery.endpoint.is_active:
        messages.error(request, _("The endpoint is disabled; enable it first."))
    else:
        webhooks.resend(delivery=delivery, user=request.user, request=request)
        messages.success(request, _("%(event)s (%(id)s) is being sent again.") % {"event": delivery.message.event_type, "id": delivery.message.msg_id})
    return redirect("console:webhook_detail", pk=delivery.endpoint_id)


# --- Messaging settings ------------------------------------------------------------------------------------


class MessagingSettingsForm(forms.Form):
    default_locale = forms.CharField(max_length=35, initial="en", label=_("Default language"),
                                     help_text=_("For customers whose language is unknown, e.g. en, hi, es, es-MX."))
    whatsapp_from = forms.CharField(max_length=16, required=False, label=_("WhatsApp sender"),
                                    help_text=_("Your WhatsApp-enabled Twilio number in E.164 form; empty: Tinko's."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in MessageKind:
            self.fields[f"sid_{kind.value}"] = forms.RegexField(
                regex=r"^HX[0-9a-fA-F]{32}$", required=False, label=_("WhatsApp template: %(kind)s") % {"kind": kind.label},
                error_messages={"invalid": _("A Twilio Content SID looks like HX followed by 32 hexadecimal characters.")},
                help_text=_("Approved Content template (variables 1: name, 2: amount, 3: pay link)."),
            )

    def clean_default_locale(self):
        import re

        value = self.cleaned_data["default_locale"].strip()
        if not re.fullmatch(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*", value):
            raise forms.ValidationError(_("Enter a language code such as en, hi or es-MX."))
        return value

    def clean_whatsapp_from(self):
        return phones.clean(self.cleaned_data["whatsapp_from"])


@role_required(Role.VIEWER)
def messaging_settings(request):
    from notifications.models import MessagingSettings

    organization = request.organization
    current = MessagingSettings.objects.filter(organization=organization).first()
    initial = {"default_locale": "en"}
    if current is not None:
        initial = {"default_locale": current.default_locale, "whatsapp_from": current.whatsapp_from,
                   **{f"sid_{k}": v for k, v in (current.whatsapp_content_sids or {}).items()}}
    form = MessagingSettingsForm(initial=initial)
    status = 200
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        form = MessagingSettingsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            sids = {k.value: data[f"sid_{k.value}"] for k in MessageKind if data[f"sid_{k.value}"]}
            MessagingSettings.objects.update_or_create(organization=organization, defaults={
                "default_locale": data["default_locale"], "whatsapp_from": data["whatsapp_from"],
                "whatsapp_content_sids": sids, "updated_at": timezone.now(),
            })
            record_audit(organization=organization, action="messaging_settings.updated", request=request,
                         data={"default_locale": data["default_locale"], "whatsapp_from": data["whatsapp_from"],
                               "whatsapp_content_sids": sids})
            messages.success(request, _("Senders and language saved."))
            return redirect("console:notifications_settings")
        status = 400
    return render(request, "notifications/console/settings.html", {
        "form": form, "can_edit": request.membership.has_role(Role.ADMIN),
    }, status=status)


# --- Developers → Logs, your webhook deliveries -------------------------------------------------

DELIVERY_LOG_PAGE_SIZE = 50


class DeliveryLogFilterForm(forms.Form):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=100,
        help_text=_("An event type such as payment.recovered, or a message id (msg_…), exactly."),
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Event type or message id")}),
    )
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any")), *DeliveryStatus.choices])
    endpoint = forms.TypedChoiceField(label=_("Endpoint"), required=False, coerce=int, empty_value=None)

    def __init__(self, *args, endpoints, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].choices = [("", _("Any"))] + [(e.pk, e.url) for e in endpoints]


@require_GET
@role_required(Role.VIEWER)
def webhook_delivery_logs(request):
    """Every delivery of this organization's webhooks to its endpoints, newest first, filterable."""
    organization = request.organization
    endpoints = list(WebhookEndpoint.objects.filter(organization=organization).order_by("-created_at"))
    form = DeliveryLogFilterForm(request.GET or None, endpoints=endpoints)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    deliveries = WebhookDelivery.objects.filter(endpoint__organization=organization).select_related("message", "endpoint")
    q = (filters.get("q") or "").strip()
    if q:
        deliveries = deliveries.filter(Q(message__event_type=q) | Q(message__msg_id=q))
    if filters.get("status"):
        deliveries = deliveries.filter(status=filters["status"])
    if filters.get("endpoint"):
        deliveries = deliveries.filter(endpoint_id=filters["endpoint"])
    return render(request, "notifications/console/delivery_logs.html", {
        "form": form, "filtered": any(filters.values()),
        **keyset_context(request, deliveries, size=DELIVERY_LOG_PAGE_SIZE),
    }, status=400 if form.errors else 200)
