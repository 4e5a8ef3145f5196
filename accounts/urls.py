from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="account_login"),
    path("profile/", views.profile, name="profile"),
    path("profile/keys/", views.api_key_create, name="api_key_create"),
    path("profile/keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("wallet/nonce/", views.wallet_nonce, name="wallet_nonce"),
    path("wallet/login/", views.wallet_login, name="wallet_login"),
    path("wallet/link/", views.wallet_link, name="wallet_link"),
]
