from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TinkoConfig(AppConfig):
    name = "tinko"
    verbose_name = "Tinko core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Every process knows every actor and periodic job (the scheduler
        # enqueues jobs of any app; web processes enqueue them by name).
        autodiscover_modules("tasks")
        # Registers the deployment checks (manage.py check --deploy).
        from tinko import checks  # noqa: F401

        # Every database connection times its statements for /metrics.
        from django.db.backends.signals import connection_created

        from tinko.metrics import instrument_connection

        connection_created.connect(instrument_connection, dispatch_uid="tinko_metrics_db")
