"""Websocket routes. Each app adds its own list here as it arrives."""

from django.urls import path

from core.live import NotificationConsumer
from serving.consumers import ChatConsumer
from training.consumers import TrainingJobConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/training/jobs/<int:job_id>/", TrainingJobConsumer.as_asgi()),
    path("ws/chat/<str:model_id>/", ChatConsumer.as_asgi()),
]
