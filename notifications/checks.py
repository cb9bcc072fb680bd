"""Deployment check (``manage.py check --deploy``): an ESP's tracking webhook must be able to authenticate."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from notifications.esp_webhooks import authenticates, build_view


@register(Tags.security, deploy=True)
def check_esp_tracking_webhook(app_configs=None, **kwargs):
    """An ESP through anymail must be able to authenticate its tracking webhook, or events would be refused.

    The endpoint refuses everything it cannot authenticate (notifications/esp_webhooks.py),
    so a deploy without the secret would silently lose every bounce and complaint.
    """
    if settings.DEBUG:
        return []
    backend = getattr(settings, "EMAIL_BACKEND", "") or ""
    if not backend.startswith("anymail.backends."):
        return []
    esp = backend.split(".")[2]
    from anymail import urls as anymail_urls

    pattern = next((p for p in anymail_urls.urlpatterns if p.name == f"{esp}_tracking_webhook"), None)
    if pattern is None:
        return []
    hint = (
        'Set ANYMAIL["WEBHOOK_SECRET"] to a random "user:password" pair (e.g. in the ANYMAIL JSON) and put it in '
        "the tracking webhook URL you give the ESP: https://user:password@<host>/webhooks/messages/anymail/"
        f"{esp}/tracking/."
    )
    try:
        view = build_view(pattern.callback.view_class, getattr(pattern.callback, "view_initkwargs", None))
    except ImproperlyConfigured as exc:
        return [Error(f"The {esp} tracking webhook cannot start: {exc}", hint=hint, id="tinko.E001")]
    if not authenticates(view):
        return [
            Error(
                f'ANYMAIL["WEBHOOK_SECRET"] is not set: the {esp} tracking webhook cannot authenticate its '
                "sender, so it refuses every event (bounces, complaints and deliveries would be lost).",
                hint=hint,
                id="tinko.E001",
            )
        ]
    return []
