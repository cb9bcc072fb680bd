"""Writing a message: render its copy with the message's context and store it ``queued`` for delivery.

The recovery engine's messages (:func:`compose`) and the editor's test messages
(:func:`send_test`) take the same path, :func:`store_rendered`; they differ only
in where the copy and the context come from.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from types import SimpleNamespace

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from notifications import delivery, rendering
from notifications.channels import mask
from notifications.copy import choose_copy, locale_candidates, sender_for
from notifications.defaults import default_copy
from notifications.models import Notification
from notifications.rules import unsubscribe_url
from recovery.models import Channel
from tinko import bulk, crypto

logger = logging.getLogger(__name__)


def compose(*, organization, channel, kind, customer, payment, pay_url, expires_at, recipient, now,
            category: str = "", amount=None, currency=None, extra=None) -> Notification:
    """Render the message in the customer's language and store it ``queued``; a worker sends it after commit."""
    locales = locale_candidates(customer, organization)
    copy, locale = choose_copy(organization=organization, channel=channel, kind=kind, locales=locales)
    context = rendering.build_context(
        organization=organization, customer=customer, payment=payment, amount=amount, currency=currency,
        pay_url=pay_url, expires_at=expires_at, locale=locale, category=category,
    )
    notification = Notification(
        organization=organization, payment=payment, customer=customer, channel=channel, kind=kind, locale=locale,
        recipient=recipient, **(extra or {}),
    )
    return store_rendered(notification, copy=copy, context=context, now=now)


def send_test(*, organization, channel: str, kind: str, locale: str, recipient: str, copy, user) -> Notification:
    """Send ``copy`` with sample data to ``recipient`` (the user's own address); recorded as a test in the Outbox."""
    from tinko.services import record_audit

    notification = Notification(organization=organization, channel=channel, kind=kind, locale=locale,
                                recipient=recipient, is_test=True)
    notification = store_rendered(notification, copy=copy, context=sample_context(organization, locale=locale),
                                  now=timezone.now())
    record_audit(organization=organization, action="template.test_sent", actor=user, target=notification,
                 data={"channel": channel, "kind": kind, "locale": locale, "to": mask(recipient)})
    return notification


def store_rendered(notification: Notification, *, copy, context: dict, now) -> Notification:
    """Render ``copy`` for ``notification`` (unsaved), store it encrypted and ``queued``, and schedule its delivery.

    A customer's e-mail carries the one-click unsubscribe link and the open pixel;
    a test message neither. A template broken since it was saved (a variable
    removed) must not stop a recovery: the shipped copy goes out instead.
    """
    organization, channel, locale = notification.organization, notification.channel, notification.locale
    notification.sender = sender_for(organization, channel)
    notification.created_at = notification.updated_at = notification.next_attempt_at = now
    tracked = channel == Channel.EMAIL and not notification.is_test
    unsubscribe = unsubscribe_url(notification) if tracked else ""
    pixel = settings.SITE_URL + reverse("notifications:open", args=[notification.public_id]) if tracked else ""
    try:
        rendered = rendering.render_message(copy=copy, channel=channel, context=context, unsubscribe_url=unsubscribe,
                                            open_pixel_url=pixel, locale=locale)
    except rendering.TemplateProblem as exc:
        logger.warning("Template %s/%s/%s unusable, sending the default: %s", channel, notification.kind, locale, exc)
        rendered = rendering.render_message(
            copy=default_copy(channel=channel, kind=notification.kind, locale="en"), channel=channel,
            context=context, unsubscribe_url=unsubscribe, open_pixel_url=pixel, locale=locale,
        )
    notification.subject = rendered.subject[:300]
    notification.text_encrypted = crypto.encrypt(rendered.text)
    notification.html_encrypted = crypto.encrypt(rendered.html) if rendered.html else ""
    notification.pay_url_encrypted = crypto.encrypt(context["pay_url"])
    notification.segments = rendered.segments
    store(notification, deliver=True)
    return notification


# The messages stored inside a stored_together() block: (notification, deliver), in the order stored.
_stored: ContextVar[list | None] = ContextVar("stored_together", default=None)


@contextmanager
def stored_together():
    """Inside the block, stored messages (queued or suppressed) are inserted together when it ends.

    For a recovery job's messages (recovery.runner): one INSERT (and one read of
    ids) for the job instead of one ``save()`` per message. The rows are inserted
    in the order they were stored, so they get their ids in that order, and each
    queued one's delivery is then scheduled (after commit) in that order, as one
    by one. Use it inside the caller's transaction: nothing reads the rows before
    the block ends. If the block raises, nothing is inserted (the caller's
    transaction rolls back anyway). Nested blocks insert at the outer one's end.
    """
    if _stored.get() is not None:
        yield
        return
    rows: list = []
    token = _stored.set(rows)
    try:
        yield
    finally:
        _stored.reset(token)
    # tinko.bulk.insert converts each value as save() would; Notification has no auto_now field or save() of its own.
    bulk.insert([(Notification, [n for n, _ in rows])])
    for notification, deliver in rows:
        if deliver:
            delivery.schedule(notification.pk)


def store(notification: Notification, *, deliver: bool) -> None:
    """Save a new message (inside :func:`stored_together`: at the block's end); ``deliver``: schedule its delivery."""
    rows = _stored.get()
    if rows is not None:
        rows.append((notification, deliver))
        return
    notification.save()
    if deliver:
        delivery.schedule(notification.pk)


def sample_context(organization, *, locale: str, category: str = "expired_card") -> dict:
    """The context of a test message and of the editor's preview: a sample customer and payment."""
    payment = SimpleNamespace(amount=4999, currency=organization.default_currency, card_brand="visa", card_last4="4242",
                              category=category)
    customer = SimpleNamespace(name="Ada Lovelace", timezone="", locale=locale)
    return rendering.build_context(
        organization=organization, customer=customer, payment=payment, pay_url=f"{settings.SITE_URL}/pay/example/",
        expires_at=timezone.now() + timedelta(hours=48), locale=locale,
    )
