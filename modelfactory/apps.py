from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ModelFactoryConfig(AppConfig):
    """The project package as an app only so that its management commands (seed_demo) are found."""

    name = "modelfactory"
    label = "modelfactory"


class ModelFactoryAdminConfig(AdminConfig):
    default_site = "modelfactory.admin_site.ModelFactoryAdminSite"
