"""Which copy a message is written in: the organization's template for the customer's language, or the shipped
default, and who it is sent from.

Every message reads its organization's templates and messaging settings, and
they change rarely (an edit in the console). Both are kept in Django's cache
(Redis in production, shared by every process) under one key per
organization, for an hour; saving or deleting a template or the settings
deletes that key at once and again when the transaction commits (a process
that refilled it in between from the old rows is corrected then). So an edit
reaches every worker on the next message, with no per-process timer to wait
out, and the cost per message is one cache read. Inside one recovery job
(:func:`read_once`, entered by ``delivery.delivery_batch``) each organization's
copy is read once for all the job's messages: an edit made during a job reaches
the next job.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from notifications.defaults import PHRASES, default_copy
from notifications.models import MessageTemplate, MessagingSettings
from recovery.models import Channel

CACHE_SECONDS = 3600


@dataclass(frozen=True)
class OrgCopy:
    """An organization's templates by (channel, kind, locale), and its MessagingSettings (or None)."""

    templates: dict
    messaging: MessagingSettings | None


def _key(organization_id: int) -> str:
    return f"notifications:copy:{organization_id}"


_job = threading.local()


@contextmanager
def read_once():
    """Within the block, each organization's copy is read once (the block is one job: seconds, not minutes)."""
    if getattr(_job, "memo", None) is not None:  # nested: the outer block's memo serves
        yield
        return
    _job.memo = {}
    try:
        yield
    finally:
        _job.memo = None


def org_copy(organization) -> OrgCopy:
    """The organization's templates and messaging settings: remembered on the organization object and
    within :func:`read_once`, else from the cache, else two queries (then cached)."""
    found = getattr(organization, "_tinko_copy", None)
    memo = getattr(_job, "memo", None)
    if found is None and memo is not None:
        found = memo.get(organization.pk)
    if found is None:
        found = cache.get(_key(organization.pk))
        if found is None:
            found = OrgCopy(
                templates={(t.channel, t.kind, t.locale): t
                           for t in MessageTemplate.objects.filter(organization_id=organization.pk)},
                messaging=MessagingSettings.objects.filter(organization_id=organization.pk).first(),
            )
            cache.set(_key(organization.pk), found, CACHE_SECONDS)
        if memo is not None:
            memo[organization.pk] = found
        organization._tinko_copy = found
    return found


def forget(sender=None, instance=None, **kwargs) -> None:
    """Connected to post_save / post_delete of MessageTemplate and MessagingSettings (notifications/apps.py)."""
    if instance is None:
        return
    key = _key(instance.organization_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


def messaging_settings(organization) -> MessagingSettings | None:
    return org_copy(organization).messaging


def org_default_locale(organization) -> str:
    own = messaging_settings(organization)
    return (own.default_locale if own is not None else "") or "en"


def locale_candidates(customer, organization) -> list[str]:
    """The customer's locale (exact, then its language), then the organization's default language."""
    found: list[str] = []
    for raw in ((customer.locale if customer is not None else "") or "", org_default_locale(organization)):
        raw = raw.strip().replace("_", "-")
        for candidate in (raw, raw.split("-")[0].lower()):
            if candidate and candidate not in found:
                found.append(candidate)
    return found or ["en"]


def choose_copy(*, organization, channel: str, kind: str, locales: list[str]):
    """(copy, locale): the org's template for the first locale that has one, else the shipped default."""
    templates = org_copy(organization).templates
    for locale in locales:
        template = templates.get((channel, kind, locale))
        if template is not None:
            return template, locale
        if locale in PHRASES:
            return default_copy(channel=channel, kind=kind, locale=locale), locale
    return default_copy(channel=channel, kind=kind, locale="en"), "en"


def sender_for(organization, channel: str) -> str:
    if channel == Channel.EMAIL:
        return f"{_header_safe(organization.brand_name)} <{settings.NOTIFICATIONS_FROM_EMAIL}>"
    if channel == Channel.WHATSAPP:
        own = getattr(messaging_settings(organization), "whatsapp_from", "")
        return own or settings.TWILIO_WHATSAPP_FROM
    return settings.TWILIO_SMS_FROM


def whatsapp_content_sid(organization, kind: str) -> str:
    """The approved WhatsApp Content template for this kind, or "" (then the text is sent)."""
    own = messaging_settings(organization)
    return (own.whatsapp_content_sids or {}).get(kind, "") if own is not None else ""


def _header_safe(name: str) -> str:
    return " ".join(name.replace('"', "").replace("<", "").replace(">", "").split())
