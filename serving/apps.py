from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "serving"
    verbose_name = "Serving"

    def ready(self):
        from serving import receivers  # noqa: F401  (connects the signal receivers)
