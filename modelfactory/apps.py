from django.contrib.admin.apps import AdminConfig


class ModelFactoryAdminConfig(AdminConfig):
    default_site = "modelfactory.admin_site.ModelFactoryAdminSite"
