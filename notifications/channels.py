"""Where a message leaves Tinko: e-mail through django-anymail (or any Django e-mail backend), SMS and
WhatsApp through Twilio.

Which ESP carries e-mail is the deployment's choice (``EMAIL_URL`` for SMTP, or
``EMAIL_BACKEND`` + ``ANYMAIL`` for an ESP). SMS and WhatsApp need
``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN``; in local mode
(``NOTIFICATIONS_CAPTURE``, on with ``DEBUG``) they are captured instead: the
message is stored and shown in the console's Outbox, and nothing leaves.
"""

from __future__ import annotations

import json
import smtplib
import threading
from email.utils import make_msgid

from django.conf import settings

from recovery.models import Channel
from tinko import phones

# Tests replace this with an HTTP client that answers with recorded Twilio responses.
twilio_http_client = None


class PermanentFailure(Exception):
    """The provider refused the message for good (invalid number, unverified sender): do not retry."""


def twilio_configured() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN)


def capturing() -> bool:
    return settings.NOTIFICATIONS_CAPTURE


def enabled_channels() -> set[str]:
    """Channels this deployment can send on."""
    channels = {Channel.EMAIL}
    if capturing() or (twilio_configured() and (settings.TWILIO_SMS_FROM or settings.TWILIO_MESSAGING_SERVICE_SID)):
        channels.add(Channel.SMS)
    if capturing() or twilio_configured():
        channels.add(Channel.WHATSAPP)
    return channels


def mask(address: str) -> str:
    """An address as shown in logs, audit and merchant webhooks: ``a…@example.com``, ``…0123``."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}…@{domain}"
    return f"…{address[-4:]}" if address else ""


_local = threading.local()


def _mail_connection():
    """This thread's open connection to the mail server (SMTP session or ESP HTTP session), reused across messages.

    Ten thousand messages over one session each save a TCP and SMTP handshake
    apiece. Keyed by the backend settings, so a changed configuration gets a new one.
    """
    from django.core.mail import get_connection

    key = (settings.EMAIL_BACKEND, getattr(settings, "EMAIL_HOST", ""), getattr(settings, "EMAIL_PORT", ""))
    if getattr(_local, "key", None) != key:
        drop_mail_connection()
        connection = get_connection()
        connection.open()
        _local.key, _local.connection = key, connection
    return _local.connection


def drop_mail_connection() -> None:
    connection = getattr(_local, "connection", None)
    _local.key = _local.connection = None
    if connection is not None:
        try:
            connection.close()
        except Exception:  # already gone
            pass


def send_email(*, notification, text: str, html: str, unsubscribe_url: str, connection=None) -> tuple[str, str]:
    """Send through the configured e-mail backend; return (provider, message id)."""
    if connection is not None:
        return _send_email(notification=notification, text=text, html=html, unsubscribe_url=unsubscribe_url,
                           connection=connection)
    try:
        return _send_email(notification=notification, text=text, html=html, unsubscribe_url=unsubscribe_url,
                           connection=_mail_connection())
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        # The server closed the idle session (or it broke): one more try on a fresh one.
        drop_mail_connection()
        return _send_email(notification=notification, text=text, html=html, unsubscribe_url=unsubscribe_url,
                           connection=_mail_connection())
    except Exception:
        drop_mail_connection()
        raise


def _send_email(*, notification, text: str, html: str, unsubscribe_url: str, connection) -> tuple[str, str]:
    from anymail.message import AnymailMessage

    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "tinko.localhost"
    message_id = make_msgid(idstring=notification.public_id, domain=domain)
    headers = {"Message-ID": message_id}
    if unsubscribe_url:
        # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to the URL.
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = AnymailMessage(
        subject=notification.subject, body=text, to=[notification.recipient], from_email=notification.sender or None,
        headers=headers, connection=connection,
    )
    if html:
        message.attach_alternative(html, "text/html")
    # Read by anymail ESP backends (ignored by SMTP): tracking webhooks carry them back.
    message.metadata = {"notification": notification.public_id}
    message.tags = [f"kind:{notification.kind or 'test'}"]
    message.send()
    status = getattr(message, "anymail_status", None)
    esp_id = getattr(status, "message_id", None) if status is not None else None
    backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2] if "." in settings.EMAIL_BACKEND else "email"
    return backend, (esp_id if isinstance(esp_id, str) and esp_id else message_id.strip("<>"))


def _twilio_client():
    from twilio.rest import Client

    return Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=twilio_http_client)


def status_callback_url() -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse("notifications:twilio_status")


def send_twilio(*, notification, text: str, content_sid: str = "", content_variables: dict | None = None) -> tuple[str, str]:
    """Send an SMS or WhatsApp message through Twilio; return ("twilio", message SID)."""
    from twilio.base.exceptions import TwilioRestException

    if not phones.is_e164(notification.recipient):
        raise PermanentFailure(f"{notification.recipient!r} is not a phone number in E.164 form.")
    whatsapp = notification.channel == Channel.WHATSAPP
    to = f"whatsapp:{notification.recipient}" if whatsapp else notification.recipient
    kwargs = {"to": to, "status_callback": status_callback_url()}
    if whatsapp:
        kwargs["from_"] = f"whatsapp:{notification.sender}"
        if content_sid:
            kwargs["content_sid"] = content_sid
            kwargs["content_variables"] = json.dumps(content_variables or {})
        else:
            kwargs["body"] = text
    else:
        if notification.sender:
            kwargs["from_"] = notification.sender
        else:
            kwargs["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        kwargs["body"] = text
    try:
        message = _twilio_client().messages.create(**kwargs)
    except TwilioRestException as exc:
        # 4xx: Twilio will refuse the same request again (invalid number, unverified sender…).
        if exc.status and 400 <= exc.status < 500 and exc.status != 429:
            raise PermanentFailure(f"Twilio error {exc.code}: {exc.msg}") from None
        raise
    return "twilio", message.sid


def twilio_signature_valid(*, url: str, params: dict, signature: str) -> bool:
    from twilio.request_validator import RequestValidator

    if not settings.TWILIO_AUTH_TOKEN or not signature:
        return False
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, params, signature)
