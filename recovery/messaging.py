"""Which channels can reach a customer, for the planner. Sending is notifications' work, through recovery.ports."""

from __future__ import annotations

from django.conf import settings

from recovery import ports
from recovery.models import Channel


def enabled_channels() -> set[str]:
    """Channels Tinko can send on in this deployment."""
    return ports.messenger().enabled_channels()


def reachable_channels(*, policy, customer, enabled: set[str] | None = None) -> list[str]:
    """The policy's channels, in order, that can reach this customer now.

    ``enabled``: :func:`enabled_channels`, when the caller asks for many customers at once.
    """
    if customer is None:
        return []
    if enabled is None:
        enabled = enabled_channels()
    opted_out = set(customer.opted_out_channels or [])
    contact = {Channel.EMAIL: customer.email, Channel.SMS: customer.phone, Channel.WHATSAPP: customer.phone}
    return [c for c in policy.channels if c in enabled and c not in opted_out and contact.get(c)]


def pay_url(token: str) -> str:
    # The hosted pay page (/pay/<token>/) is served by the pay-pages work; the
    # address is fixed by DESIGN.md, so links sent now keep working then.
    return f"{settings.SITE_URL}/pay/{token}/"
