from django.apps import AppConfig


class TinkoConfig(AppConfig):
    name = "tinko"
    verbose_name = "Tinko core"
    default_auto_field = "django.db.models.BigAutoField"
