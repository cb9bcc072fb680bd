"""Daily rollups of an organization's payments: what the dashboard reads instead of a million rows.

A rollup row sums the payments that first failed on one day (in the
organization's time zone) and share every other dimension of the row; readers
sum rows, so a day may also hold difference rows (a page view's live update,
below) until it is re-rolled. The rows are derived data: analytics/rollups.py
rebuilds the days whose payments changed (``Payment.updated_at``) since its
last refresh, and everything when the organization's time zone changed; a page
view adds, per changed payment, what it adds now less what it added when last
rolled (:class:`RolledPayment`). Nothing here is ever edited by hand.
"""

from __future__ import annotations

from django.db import models

from tinko.models import Organization


class RollupState(models.Model):
    """How far an organization's rollups are up to date, and for which time zone they were cut."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="analytics_state")
    timezone = models.CharField(max_length=64, blank=True)
    # Payments updated after this (less a safety margin for slow commits) are re-rolled.
    refreshed_through = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # Days (ISO dates) a page view brought up to date with differences only (without their
    # card-network counts); the next refresh that is not a page view's re-rolls them in full
    # (analytics/rollups.py).
    compliance_pending = models.JSONField(default=list, blank=True)


class PaymentDimensions(models.Model):
    """What a payment is counted under in DailyRollup: its failure day and the dimensions beside it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    currency = models.CharField(max_length=3)
    category = models.CharField(max_length=30)
    provider = models.CharField(max_length=10)
    holdout_group = models.CharField(max_length=10)
    # recovered | open (failed, recovering) | closed (exhausted, cancelled)
    outcome = models.CharField(max_length=10)
    # Attribution of recovered payments: channel, and the recovering attempt's number (0: none, e.g. a link).
    channel = models.CharField(max_length=10)
    attempt_number = models.PositiveSmallIntegerField()

    class Meta:
        abstract = True


class RolledPayment(PaymentDimensions):
    """What one payment adds to the rollups as they stand: the row a page view's refresh subtracts
    when the payment changes, before adding what it adds now (analytics/rollups.py).

    Written with the rollups of its day, so it always matches them. ``hours``: the recovery-time
    bucket, None when the payment adds nothing to RecoveryTimeRollup. ``payment_id`` is not a
    foreign key: a deleted payment's row goes with the next rebuild of its day.
    """

    payment_id = models.BigIntegerField(primary_key=True)
    amount = models.BigIntegerField()
    recovered_amount = models.BigIntegerField()
    hours = models.IntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "day"], name="analytics_rolled_org_day")]


class DailyRollup(PaymentDimensions):
    """Payments by failure day, currency, category, provider, holdout group, outcome and attribution."""

    payments = models.IntegerField()
    amount = models.BigIntegerField()
    recovered_amount = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["organization", "day"], name="analytics_daily_org_day")]


class RecoveryTimeRollup(models.Model):
    """Recovered payments by failure day and whole hours from the first failure to the recovery."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    currency = models.CharField(max_length=3)
    holdout_group = models.CharField(max_length=10)
    hours = models.IntegerField()
    payments = models.IntegerField()
    recovered_amount = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["organization", "day"], name="analytics_time_org_day")]


class ComplianceRollup(models.Model):
    """What the card networks count, per failure day and card brand.

    ``auto_attempts``: automatic re-charges made or scheduled for the payment
    (one card and amount: what Visa's 15-in-30-days rule counts);
    ``peak_24h``: the most of them within any 24 hours (Mastercard's 10-per-day rule).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    brand = models.CharField(max_length=20)
    auto_attempts = models.PositiveSmallIntegerField()
    peak_24h = models.PositiveSmallIntegerField()
    payments = models.IntegerField()
    # Failures after which the network forbade any reattempt (Visa category 1, Mastercard MAC 03/21).
    network_stops = models.IntegerField()
    # Recoveries the planner ended or moved because of a card-network limit.
    limit_refusals = models.IntegerField()
    # Mastercard MAC 24–30 ("retry after…") failures followed by an automatic attempt, and how
    # many of those attempts waited as long as the issuer asked.
    advice_waits = models.IntegerField()
    advice_waits_honoured = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["organization", "day"], name="analytics_comp_org_day")]
