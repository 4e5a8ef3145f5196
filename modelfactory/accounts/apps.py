from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "modelfactory.accounts"
    label = "accounts"
    verbose_name = "Accounts"
