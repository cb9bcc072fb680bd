"""Writing a message: render its copy with the message's context and store it ``queued`` for delivery.

The recovery engine's messages (:func:`compose`) and the editor's test messages
(:func:`send_test`) take the same path, :func:`store_rendered`; they differ only
in where the copy and the context come from.
"""

from __future__ import annotations

import logging
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
from tinko import crypto

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
    notification.save()
    delivery.schedule(notification.pk)
    return notification


def sample_context(organization, *, locale: str, category: str = "expired_card") -> dict:
    """The context of a test message and of the editor's preview: a sample customer and payment."""
    payment = SimpleNamespace(amount=4999, currency=organization.default_currency, card_brand="visa", card_last4="4242",
                              category=category)
    customer = SimpleNamespace(name="Ada Lovelace", timezone="", locale=locale)
    return rendering.build_context(
        organization=organization, customer=customer, payment=payment, pay_url=f"{settings.SITE_URL}/pay/example/",
        expires_at=timezone.now() + timedelta(hours=48), locale=locale,
    )
