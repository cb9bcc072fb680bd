from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from anymail.signals import tracking

        from notifications import checks  # noqa: F401  (registers the deploy check)

        from notifications import timeline
        from notifications.views import on_tracking_event
        from recovery.timeline import register_source

        from django.db.models.signals import post_delete, post_save

        from notifications import copy
        from notifications.models import MessageTemplate, MessagingSettings

        tracking.connect(on_tracking_event, dispatch_uid="tinko_notifications_tracking")
        # An edited template or sender reaches every worker's next message (notifications/copy.py).
        for model in (MessageTemplate, MessagingSettings):
            post_save.connect(copy.forget, sender=model, dispatch_uid=f"tinko_copy_saved_{model.__name__}")
            post_delete.connect(copy.forget, sender=model, dispatch_uid=f"tinko_copy_deleted_{model.__name__}")
        register_source(timeline.notification_entries)
        register_source(timeline.webhook_entries)
        # The merchant's webhooks and link clicks follow the engine's events (recovery.signals).
        from notifications import receivers
        from notifications.messenger import NotificationsMessenger
        from recovery.ports import register_messenger

        receivers.connect()
        # The engine sends its messages through this port (recovery/ports.py).
        register_messenger(NotificationsMessenger())
