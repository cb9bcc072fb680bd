"""Deployment checks (``manage.py check --deploy``) for settings Tinko runs without, but badly.

Production starts without REDIS_URL or an HTTPS SITE_URL, because local mode
needs neither; these warnings make that visible where operators look.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


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
