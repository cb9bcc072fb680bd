"""anymail's webhook endpoints (``/webhooks/messages/anymail/<esp>/…/``), closed unless they can tell who is calling.

anymail accepts events without any check when ``ANYMAIL["WEBHOOK_SECRET"]`` is
unset and the ESP signs nothing (it only warns). A forged bounce would then
suppress a customer. Each anymail view is wrapped here so that it:

* refuses every request (403) while it cannot authenticate its sender: no
  basic-auth secret for an ESP that relies on it, or its own signing key
  missing (``manage.py check --deploy`` fails on the same condition: tinko/checks.py);
* answers an unauthenticated request 400 and a body it cannot read 400 (JSON,
  with the reason), not anymail's HTML 400 or a 500;
* is rate-limited per address like every webhook (tinko/webhook_guard.py).

The events themselves go to the same anymail signals as before.
"""

from __future__ import annotations

import logging
import warnings

from anymail.exceptions import AnymailInsecureWebhookWarning, AnymailWebhookValidationFailure
from anymail.webhooks.base import AnymailBasicAuthMixin, AnymailCoreWebhookView
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt

from tinko.errors import is_outage
from tinko.webhook_guard import json_error, webhook_endpoint

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "This webhook is not configured to authenticate its sender, so it accepts nothing."


def build_view(view_class: type[AnymailCoreWebhookView], initkwargs: dict | None = None) -> AnymailCoreWebhookView:
    """An instance of the anymail view as it would serve a request now (ImproperlyConfigured if it cannot)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnymailInsecureWebhookWarning)
        return view_class(**(initkwargs or {}))


def authenticates(view: AnymailCoreWebhookView) -> bool:
    """Whether ``view`` checks who sent a request: a basic-auth secret, or the ESP's own signature."""
    if isinstance(view, AnymailBasicAuthMixin):
        return bool(view.basic_auth) or not view.warn_if_no_basic_auth
    return type(view).validate_request is not AnymailCoreWebhookView.validate_request


def guarded(view_class: type[AnymailCoreWebhookView], initkwargs: dict | None = None):
    @csrf_exempt
    @webhook_endpoint
    def view(request, *args, **kwargs):
        if request.method not in ("POST", "HEAD"):
            return json_error(405, "Use POST.", Allow="POST, HEAD")
        try:
            instance = build_view(view_class, initkwargs)
        except ImproperlyConfigured:
            logger.error("%s is missing its settings; refusing its webhook requests", view_class.__name__, exc_info=True)
            return json_error(403, NOT_CONFIGURED)
        if not authenticates(instance):
            logger.warning("%s cannot authenticate requests (no ANYMAIL WEBHOOK_SECRET); refused", view_class.__name__)
            return json_error(403, NOT_CONFIGURED)
        if request.method == "HEAD":  # some ESPs probe the URL when it is configured
            return HttpResponse()
        instance.setup(request, *args, **kwargs)
        try:
            instance.run_validators(request)
        except AnymailWebhookValidationFailure:
            return json_error(400, "The request could not be authenticated.")
        except Exception as exc:
            if is_outage(exc):
                raise
            return json_error(400, "The request could not be authenticated: its body cannot be read.")
        try:
            events = list(instance.parse_events(request))
        except Exception as exc:
            if is_outage(exc):
                raise
            logger.info("%s: unreadable event body (%s)", view_class.__name__, type(exc).__name__)
            return json_error(400, "The body is not an event this webhook understands.")
        for event in events:
            instance.signal.send(sender=view_class, event=event, esp_name=instance.esp_name)
        return HttpResponse()

    return view


def urlpatterns() -> list[URLPattern]:
    """anymail's own URL patterns (same paths and names), each view wrapped by :func:`guarded`."""
    from anymail import urls as anymail_urls

    patterns = []
    for pattern in anymail_urls.urlpatterns:
        callback = pattern.callback
        view = guarded(callback.view_class, getattr(callback, "view_initkwargs", None))
        patterns.append(URLPattern(pattern.pattern, view, pattern.default_args, pattern.name))
    return patterns
