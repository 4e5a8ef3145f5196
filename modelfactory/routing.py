"""Websocket routes. Each app adds its own list here as it arrives."""

from django.urls import path

from modelfactory.notifications import NotificationConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
]
