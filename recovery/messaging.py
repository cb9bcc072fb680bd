"""Messages to customers for notification attempts.

This issue sends e-mail (through tinko.mail: stored encrypted, sent by a
worker after commit). SMS and WhatsApp senders arrive with the notifications
work; until then the planner never picks those channels, and says so.
"""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string

from payments.models import Channel
from tinko import mail
from tinko.currencies import format_amount


def enabled_channels() -> set[str]:
    """Channels Tinko can send on in this deployment."""
    return {Channel.EMAIL}


def reachable_channels(*, policy, customer) -> list[str]:
    """The policy's channels, in order, that can reach this customer now."""
    if customer is None:
        return []
    enabled = enabled_channels()
    opted_out = set(customer.opted_out_channels or [])
    contact = {Channel.EMAIL: customer.email, Channel.SMS: customer.phone, Channel.WHATSAPP: customer.phone}
    return [c for c in policy.channels if c in enabled and c not in opted_out and contact.get(c)]


def pay_url(token: str) -> str:
    # The hosted pay page (/pay/<token>/) is served by the pay-pages work; the
    # address is fixed by DESIGN.md, so links sent now keep working then.
    return f"{settings.SITE_URL}/pay/{token}/"


def send(*, attempt, payment, customer, token: str, expires_at) -> str:
    """Send the attempt's message; return what happened in plain language. Must not move money."""
    if attempt.channel != Channel.EMAIL:
        raise ValueError(f"No sender for channel {attempt.channel!r}")
    org = payment.organization
    context = {
        "customer_name": (customer.name.split()[0] if customer and customer.name else ""),
        "merchant": org.brand_name,
        "support_email": org.support_email,
        "amount": format_amount(payment.amount, payment.currency),
        "description": payment.description,
        "pay_url": pay_url(token),
        "expires_at": expires_at,
        "kind": attempt.message_kind,
        "category": payment.category,
    }
    subject = render_to_string("recovery/email/recovery_subject.txt", context)
    body = render_to_string("recovery/email/recovery_body.txt", context)
    mail.queue_email(subject=subject, body=body, to=[customer.email])
    return f"E-mail queued to {mask_email(customer.email)}."


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}"
