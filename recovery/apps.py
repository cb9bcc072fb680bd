from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "recovery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_save

        from recovery import dispatch
        from recovery.classifier import connect_signals
        from tinko.models import Organization
        from tinko.scheduler import on_tick

        # Due recovery attempts are claimed on every scheduler tick.
        on_tick(dispatch.claim_due_attempts)
        # The backlog (due attempts, the oldest one's wait, expired leases) is read at each metrics scrape.
        from recovery import backlog
        from tinko.metrics import add_state_source

        add_state_source(backlog.gauges)
        # Rule edits reach every process's classifier cache.
        connect_signals()
        post_save.connect(_create_default_policy, sender=Organization, dispatch_uid="recovery_default_policy")
        # The engine's own entries on every payment's timeline.
        from recovery import timeline, timeline_sources

        for source in timeline_sources.SOURCES:
            timeline.register_source(source)


def _create_default_policy(sender, instance, created, raw=False, **kwargs):
    """Every organization starts with a default retry policy."""
    if created and not raw:
        from recovery.services import create_default_policy

        create_default_policy(instance)
