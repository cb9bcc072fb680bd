from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from anymail.signals import tracking

        from notifications import timeline
        from notifications.views import on_tracking_event
        from recovery.timeline import register_source

        tracking.connect(on_tracking_event, dispatch_uid="tinko_notifications_tracking")
        register_source(timeline.notification_entries)
        register_source(timeline.webhook_entries)
