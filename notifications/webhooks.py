"""Webhooks to merchants, signed per Standard Webhooks (https://www.standardwebhooks.com/).

Each event is a WebhookMessage (its ``msg_id`` is the ``webhook-id`` header) and
one WebhookDelivery per subscribed endpoint, written in the transaction that
caused the event and sent by a worker after commit. A failed delivery is tried
again after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h; when the last one fails
the endpoint is disabled and the organization's owners get an e-mail. The
scheduler re-sends due deliveries, so a lost broker message only delays one.

In production an endpoint must be https:// on a public address: private,
loopback, link-local and reserved addresses (and IPv6 forms that lead to them)
are refused when the endpoint is saved, and at every request the address
actually connected to is checked (the name may resolve elsewhere later).
The request is sent outside any transaction or row lock.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time as time_module
from datetime import timedelta
from urllib.parse import urlsplit

import dramatiq
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    new_webhook_secret,
)
from tinko import bulk, crypto, metrics, orgconfig
from tinko.background import send_safely

logger = logging.getLogger(__name__)

# Waits after the 1st, 2nd, … failed attempt; after the last, the endpoint is disabled.
RETRY_SCHEDULE = [
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=5),
    timedelta(hours=10), timedelta(hours=10),
]
TIMEOUT_SECONDS = 10
USER_AGENT = "Tinko-Webhooks/1.0"


# --- Signing ---------------------------------------------------------------------------------------------


def sign(*, secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` with the secret's bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, secret: str, msg_id: str, body: str, timestamp: int | None = None) -> dict:
    timestamp = int(time_module.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


# --- URL safety ------------------------------------------------------------------------------------------


class UnsafeURL(ValueError):
    pass


def allow_private() -> bool:
    return settings.TINKO_WEBHOOKS_ALLOW_PRIVATE


# IPv6 ranges that carry an IPv4 address inside (checked as that address), and ranges never to reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def is_public_address(address) -> bool:
    """Whether a webhook may go to ``address`` (an ip_address): global, not multicast, and for IPv6
    no form that leads to a non-global IPv4 address (mapped, 6to4, Teredo, NAT64) or an obsolete one."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL:
            return False  # "::127.0.0.1" and friends: deprecated, or local by definition
        if address.sixtofour is not None:
            return is_public_address(address.sixtofour)
        if address.teredo is not None:
            return all(is_public_address(a) for a in address.teredo)
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return address.is_global and not address.is_multicast and not address.is_reserved


def check_url(url: str, *, resolve: bool = True) -> None:
    """UnsafeURL unless ``url`` may receive webhooks (https on a public address in production).

    On save: the name is resolved and every address it has must be public. At
    delivery the address actually connected to is checked again
    (:func:`_pinned_socket`), so a name that resolves elsewhere later gains nothing.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("Enter an http:// or https:// URL.")
    if parts.username or parts.password:
        raise UnsafeURL("The URL must not contain a user name or password.")
    if allow_private():
        return
    if parts.scheme != "https":
        raise UnsafeURL("Webhook URLs must use https://.")
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise UnsafeURL("The URL points at a private or local address.") from None
        if not resolve:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise UnsafeURL(f"The host name {host!r} does not resolve.") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public_address(address):
            raise UnsafeURL("The URL points at a private or local address.")


def _pinned_socket(host: str, port: int, timeout, socket_options) -> socket.socket:
    """Resolve ``host`` once and connect to the first address that passes :func:`is_public_address`.

    The address checked is the one connected to: no second resolution can swap it
    (DNS rebinding). TLS still verifies the certificate against the host name.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"The host name {host!r} does not resolve.") from None
    last_error: OSError | None = None
    refused = False
    for family, kind, proto, _, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if not allow_private() and not is_public_address(address):
            refused = True
            continue
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not None:
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    if last_error is not None:
        raise last_error
    if refused:
        raise UnsafeURL("The URL points at a private or local address.")
    raise OSError(f"No address to connect to for {host!r}.")


def _session():
    """A requests session whose connections go only to checked addresses (and never through a proxy)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Pinned:
        def _new_conn(self):
            return _pinned_socket(self._dns_host, self.port, self.timeout, self.socket_options)

    class PinnedHTTPConnection(_Pinned, HTTPConnection):
        pass

    class PinnedHTTPSConnection(_Pinned, HTTPSConnection):
        pass

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPSConnection

    class PinnedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": PinnedHTTPPool, "https": PinnedHTTPSPool}

    session = requests.Session()
    session.trust_env = False  # a proxy's address would be the one checked
    session.mount("http://", PinnedAdapter())
    session.mount("https://", PinnedAdapter())
    return session


# --- Endpoints -------------------------------------------------------------------------------------------


def create_endpoint(*, organization, url: str, events: list[str], description: str = "", user=None, request=None):
    """A new endpoint; returns (endpoint, secret). The secret exists only in the return value and the form shown once."""
    from tinko.services import record_audit

    check_url(url)
    secret = new_webhook_secret()
    endpoint = WebhookEndpoint.objects.create(
        organization=organization, url=url, events=sorted(set(events)), description=description,
        secret_encrypted=crypto.encrypt(secret), created_by=user,
    )
    record_audit(organization=organization, action="webhook_endpoint.created", actor=user, request=request,
                 target=endpoint, data={"url": url, "events": endpoint.events})
    return endpoint, secret


def endpoint_secret(endpoint) -> str:
    return crypto.decrypt(endpoint.secret_encrypted)


def set_active(*, endpoint, active: bool, user=None, request=None) -> WebhookEndpoint:
    from tinko.services import record_audit

    endpoint.is_active = active
    endpoint.disabled_at = None if active else timezone.now()
    endpoint.disabled_reason = "" if active else "Disabled from the console."
    endpoint.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    record_audit(organization=endpoint.organization, action="webhook_endpoint.enabled" if active else "webhook_endpoint.disabled",
                 actor=user, request=request, target=endpoint, data={"url": endpoint.url})
    return endpoint


# --- Emitting ------------------------------------------------------------------------------------------


def _payload(event_type: str, data: dict, at) -> dict:
    return {"type": event_type, "timestamp": at.isoformat().replace("+00:00", "Z"), "data": data}


def emit(*, organization_id: int, event_type: str, data: dict, payment_id=None) -> WebhookMessage | None:
    """Record one event for the organization's subscribed endpoints; sent after commit. None if nobody listens."""
    return (emit_many(organization_id=organization_id, events=[(event_type, data, payment_id)]) or [None])[0]


def emit_many(*, organization_id: int, events: list[tuple[str, dict, int | None]]) -> list[WebhookMessage]:
    """Record many events in a few statements (ingestion of a thousand reports costs one query when nobody listens).

    An event's data may be a function that makes it, called only when an endpoint wants the event.
    """
    if not events:
        return []
    # bulk.fetch, not a QuerySet: this runs for every ingested report and every attempt's answer; an API
    # request's ingestion takes this process's copy while the configuration is unchanged (tinko/orgconfig.py).
    endpoints = orgconfig.cached(organization_id, "notifications.active_endpoints", lambda: bulk.fetch(
        WebhookEndpoint, Q(organization_id=organization_id, is_active=True)
    ))
    if not endpoints:
        return []
    now = timezone.now()
    messages, pairs = [], []
    for event_type, data, payment_id in events:
        targets = [e for e in endpoints if e.wants(event_type)]
        if not targets:
            continue
        if callable(data):
            data = data()
        message = WebhookMessage(organization_id=organization_id, event_type=event_type, payment_id=payment_id,
                                 payload=_payload(event_type, data, now), created_at=now)
        messages.append(message)
        pairs.extend((message, endpoint) for endpoint in targets)
    if not messages:
        return []
    WebhookMessage.objects.bulk_create(messages)
    deliveries = WebhookDelivery.objects.bulk_create([
        WebhookDelivery(endpoint=endpoint, message=message, next_attempt_at=now, created_at=now) for message, endpoint in pairs
    ])
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: _enqueue(ids))
    return messages


def _enqueue(ids, delay_ms: int | None = None):
    """Send deliveries to the workers; with the broker down they wait for the scheduler's sweep (enqueue_due)."""
    for pk in ids:
        if not send_safely(deliver_webhook, pk, delay=delay_ms):
            return


def payment_data(payment) -> dict:
    return {
        "reference": payment.reference, "status": payment.status, "amount": payment.amount, "currency": payment.currency,
        "category": payment.category, "failure_count": payment.failure_count,
        "recovered_amount": payment.recovered_amount, "recovered_channel": payment.recovered_channel or None,
        "recovered_at": payment.recovered_at, "provider": payment.provider,
        "provider_payment_id": payment.provider_payment_id or None,
    }


def payment_event(payment, event_type: str, **extra) -> None:
    emit(organization_id=payment.organization_id, event_type=event_type, payment_id=payment.pk,
         data=_payment_data(payment, extra))


def payment_event_item(payment, event_type: str, **extra) -> tuple:
    """:func:`payment_event` as one of :func:`emit_many`'s events, written later with others.

    The payment's fields are read now (the payment may change before the write);
    the JSON is made only if an endpoint wants the event.
    """
    return (event_type, functools.partial(_plain, {"payment": payment_data(payment), **extra}), payment.pk)


def payments_event(organization_id: int, payments, event_type: str) -> None:
    emit_many(organization_id=organization_id, events=[
        (event_type, functools.partial(_payment_data, p, {}), p.pk) for p in payments
    ])


def _payment_data(payment, extra: dict) -> dict:
    return _plain({"payment": payment_data(payment), **extra})


def _plain(data):
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def resend(*, delivery, user=None, request=None) -> WebhookDelivery:
    """Send a delivery's message again now, as a new delivery (the receiver dedupes on webhook-id)."""
    from tinko.services import record_audit

    new = WebhookDelivery.objects.create(endpoint=delivery.endpoint, message=delivery.message, next_attempt_at=timezone.now())
    transaction.on_commit(lambda: _enqueue([new.pk]))
    record_audit(organization=delivery.endpoint.organization, action="webhook.resent", actor=user, request=request,
                 target=delivery.endpoint, data={"message": delivery.message.msg_id, "event": delivery.message.event_type})
    return new


def send_test_event(*, endpoint, user=None, request=None) -> WebhookDelivery:
    now = timezone.now()
    message = WebhookMessage.objects.create(
        organization_id=endpoint.organization_id, event_type=WebhookEventType.TEST, created_at=now,
        payload=_payload(WebhookEventType.TEST, {"message": "A test event from the Tinko console."}, now),
    )
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, message=message, next_attempt_at=now)
    transaction.on_commit(lambda: _enqueue([delivery.pk]))
    return delivery


# --- Delivering -----------------------------------------------------------------------------------------


# The actor lives beside the function it runs, so that emitting an event enqueues it without importing
# notifications.tasks (which imports this module for its periodic sweep: an import cycle).
@dramatiq.actor(queue_name="webhooks", max_retries=0, time_limit=60_000)
def deliver_webhook(delivery_id: int) -> None:
    """Try one merchant webhook delivery; the retry schedule lives in the database, not in Dramatiq."""
    deliver(delivery_id)


# While a worker is sending a delivery, it is not due for anyone else (a duplicate message, the sweep).
IN_FLIGHT = timedelta(seconds=TIMEOUT_SECONDS * 3)


def deliver(delivery_id: int, *, now=None) -> WebhookDelivery | None:
    """Try one pending delivery whose time has come; record the answer and schedule the next try or give up.

    The HTTP request is made outside any transaction and row lock: a short
    transaction marks the delivery in flight (not due again for IN_FLIGHT), the
    request goes out, a second short transaction records the answer.
    """
    now = now or timezone.now()
    claimed = _claim_delivery(delivery_id, now)
    if not isinstance(claimed, tuple):
        return claimed
    delivery, attempt_number, body, headers = claimed
    code, error, text, elapsed = _post(delivery.endpoint.url, body=body, headers=headers)
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update().select_related("endpoint", "message")
                    .filter(pk=delivery_id).first())
        # Someone recorded this attempt already (the lease ran out and another worker sent it again).
        if delivery is None or delivery.status != DeliveryStatus.PENDING or delivery.attempt_count != attempt_number - 1:
            return delivery
        endpoint = delivery.endpoint
        delivery.attempt_count = attempt_number
        delivery.last_attempt_at = now
        delivery.last_status_code, delivery.last_error, delivery.last_response = code, error[:500], text
        delivery.log = [*delivery.log, {"at": now.isoformat(), "status_code": code, "error": error[:200], "ms": elapsed}]
        disable = False
        if not error:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, None
        elif delivery.attempt_count > len(RETRY_SCHEDULE):
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            disable = True
        else:
            wait = RETRY_SCHEDULE[delivery.attempt_count - 1]
            delivery.next_attempt_at = now + wait
        delivery.save()
        metrics.merchant_webhook_delivery(
            "succeeded" if not error else "failed" if delivery.status == DeliveryStatus.FAILED else "retrying"
        )
        if disable:
            _disable_after_failures(endpoint, delivery, now)
        elif delivery.status == DeliveryStatus.PENDING:
            wait_ms = int((delivery.next_attempt_at - now).total_seconds() * 1000)
            if wait_ms <= 60_000:  # longer waits are picked up by the scheduler's sweep
                transaction.on_commit(lambda: _enqueue([delivery.pk], delay_ms=wait_ms))
    return delivery


def _claim_delivery(delivery_id: int, now):
    """Lock, check and mark in flight; (delivery, attempt number, body, headers) to send, or the delivery as it is."""
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True).select_related("endpoint", "message")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return delivery
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return delivery  # an early duplicate message, or in flight elsewhere; the scheduled one will come
        endpoint = delivery.endpoint
        if not endpoint.is_active:
            delivery.status, delivery.last_error = DeliveryStatus.FAILED, "The endpoint is disabled."
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
            return delivery
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=now + IN_FLIGHT)
        body = json.dumps(delivery.message.payload, separators=(",", ":"))
        headers = signed_headers(secret=endpoint_secret(endpoint), msg_id=delivery.message.msg_id, body=body)
        return delivery, delivery.attempt_count + 1, body, headers


def _post(url: str, *, body: str, headers: dict) -> tuple[int | None, str, str, int]:
    """POST to a merchant's endpoint: (status code, error, first 1,000 characters of the answer, milliseconds)."""
    import requests

    code, error, text = None, "", ""
    started = time_module.monotonic()
    try:
        check_url(url, resolve=False)
        # No redirects (a redirect could lead to a private address); read at most 1 KB of the answer.
        with _session() as session, session.post(url, data=body.encode(), headers=headers, timeout=TIMEOUT_SECONDS,
                                                 allow_redirects=False, stream=True) as response:
            code = response.status_code
            text = next(response.iter_content(1000), b"").decode("utf-8", "replace")
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except UnsafeURL as exc:
        error = str(exc)
    except requests.RequestException as exc:
        # The kind of failure only: the exception's text can carry addresses and library internals.
        error = _network_error(exc)
    elapsed = int((time_module.monotonic() - started) * 1000)
    return code, error, text, elapsed


def _network_error(exc) -> str:
    import requests

    if isinstance(exc, requests.Timeout):
        return f"No answer within {TIMEOUT_SECONDS} s."
    if isinstance(exc, requests.exceptions.SSLError):
        return "The TLS connection failed (certificate or protocol)."
    if isinstance(exc, requests.ConnectionError):
        return "Could not connect."
    return f"The request failed ({type(exc).__name__})."


def _disable_after_failures(endpoint, delivery, now) -> None:
    from tinko.mail import queue_email
    from tinko.models import Membership, Role
    from tinko.services import record_audit

    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if not endpoint.is_active:
        return
    endpoint.is_active = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Every attempt to deliver {delivery.message.event_type} ({delivery.message.msg_id}) failed "
        f"{delivery.attempt_count} times; last: {delivery.last_error}"
    )[:300]
    endpoint.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    metrics.merchant_webhook_endpoint_disabled()
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="The endpoint was disabled."
    )
    organization = endpoint.organization
    owners = list(Membership.objects.filter(organization=organization, role=Role.OWNER).values_list("user__email", flat=True))
    if owners:
        queue_email(
            subject=f"Tinko disabled a webhook endpoint of {organization.name}",
            body=(
                f"Tinko could not deliver events to {endpoint.url} and has disabled it.\n\n"
                f"{endpoint.disabled_reason}\n\n"
                f"No further events are sent to it. Fix the endpoint, then enable it again and resend what it missed:\n"
                f"{settings.SITE_URL}/console/webhooks/\n"
            ),
            to=owners,
        )
    record_audit(organization=organization, action="webhook_endpoint.disabled", target=endpoint,
                 data={"url": endpoint.url, "reason": endpoint.disabled_reason})


def enqueue_due(*, now=None, limit: int = 1000) -> int:
    """Enqueue pending deliveries whose time has come (the scheduler's sweep)."""
    now = now or timezone.now()
    ids = list(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    _enqueue(ids)
    return len(ids)
