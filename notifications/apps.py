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

        from notifications.models import MessageTemplate
        from notifications.services import forget_templates

        tracking.connect(on_tracking_event, dispatch_uid="tinko_notifications_tracking")
        post_save.connect(forget_templates, sender=MessageTemplate, dispatch_uid="tinko_templates_saved")
        post_delete.connect(forget_templates, sender=MessageTemplate, dispatch_uid="tinko_templates_deleted")
        from notifications.models import MessagingSettings
        from notifications.services import forget_messaging_settings

        post_save.connect(forget_messaging_settings, sender=MessagingSettings, dispatch_uid="tinko_msg_settings_saved")
        post_delete.connect(forget_messaging_settings, sender=MessagingSettings, dispatch_uid="tinko_msg_settings_deleted")
        register_source(timeline.notification_entries)
        register_source(timeline.webhook_entries)
        # The merchant's webhooks and link clicks follow the engine's events (recovery.signals).
        from notifications import receivers
        from notifications.messenger import NotificationsMessenger
        from recovery.ports import register_messenger

        receivers.connect()
        # The engine sends its messages through this port (recovery/ports.py).
        register_messenger(NotificationsMessenger())
