from django.apps import AppConfig


class DatanetsConfig(AppConfig):
    name = "datanets"
    verbose_name = "Datanets"
