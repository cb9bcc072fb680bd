"""Deployment checks (``manage.py check --deploy``) for settings Tinko runs without, but badly.

Production starts without REDIS_URL or an HTTPS SITE_URL, because local mode
needs neither; these warnings make that visible where operators look.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_production_services(app_configs=None, **kwargs):
    if settings.DEBUG:
        return []
    warnings = []
    if not settings.REDIS_URL:
        warnings.append(
            Warning(
                "REDIS_URL is not set: rate limits become per process; background jobs and the scheduler need Redis.",
                hint="Set REDIS_URL (e.g. redis://redis:6379/0) and run the worker and scheduler processes.",
                id="tinko.W001",
            )
        )
    if not settings.SITE_URL.startswith("https://"):
        warnings.append(
            Warning(
                f"SITE_URL is {settings.SITE_URL!r}, not an https:// URL: links in e-mails "
                "(invitations) point there.",
                hint="Set SITE_URL to the public address, e.g. https://tinko.example.com.",
                id="tinko.W002",
            )
        )
    return warnings


@register(Tags.security, deploy=True)
def check_esp_tracking_webhook(app_configs=None, **kwargs):
    """An ESP through anymail must be able to authenticate its tracking webhook, or events would be refused.

    The endpoint refuses everything it cannot authenticate (notifications/tracking.py),
    so a deploy without the secret would silently lose every bounce and complaint.
    """
    if settings.DEBUG:
        return []
    backend = getattr(settings, "EMAIL_BACKEND", "") or ""
    if not backend.startswith("anymail.backends."):
        return []
    esp = backend.split(".")[2]
    from anymail import urls as anymail_urls
    from django.core.exceptions import ImproperlyConfigured

    from notifications.tracking import authenticates, build_view

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
