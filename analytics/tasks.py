"""Background jobs of analytics: keep every organization's rollups fresh, so dashboards read without waiting."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from analytics.rollups import refresh
from tinko.models import Organization
from tinko.scheduler import periodic

logger = logging.getLogger(__name__)


@periodic(every=timedelta(minutes=1))
@dramatiq.actor(queue_name="housekeeping", max_retries=0, time_limit=3_600_000)
def refresh_rollups() -> None:
    """Re-roll the failure days whose payments changed, for each organization (all of them after a time-zone change)."""
    for organization in Organization.objects.order_by("pk").iterator():
        try:
            refresh(organization)
        except Exception:
            logger.exception("Analytics rollups of organization %s could not be refreshed", organization.pk)


@periodic(every=timedelta(days=1))
@dramatiq.actor(queue_name="housekeeping", max_retries=0, time_limit=6 * 3_600_000)
def rebuild_rollups() -> None:
    """Rebuild every organization's rollups from scratch once a day.

    The minute job re-rolls the days a changed payment fails on now; a payment
    whose first failure moved to an earlier day (a late report of an older
    failure) or that was deleted also left a trace on its old day, which only
    a rebuild removes.
    """
    for organization in Organization.objects.order_by("pk").iterator():
        try:
            refresh(organization, full=True)
        except Exception:
            logger.exception("Analytics rollups of organization %s could not be rebuilt", organization.pk)
