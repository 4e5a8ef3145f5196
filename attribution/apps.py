from django.apps import AppConfig


class AttributionConfig(AppConfig):
    name = "attribution"
    verbose_name = "Attribution"

    def ready(self):
        from attribution import receivers  # noqa: F401  (connects the signal handlers)
