"""The Celery application.

Queues are named by hardware: `default` for light work, `gpu` for training and
`attribution` for influence scoring (GPU hosts consume both); serving is not a
Celery task but its own process (`python -m serving.worker`). Settings (JSON
only, acks_late, reject on worker loss, prefetch 1, CELERY_TASK_ROUTES) live in
settings.py under the CELERY_ namespace. Every worker runs training.sweep.StaleJobSweep.
"""

import os

from celery import Celery
from kombu import Queue

from training.sweep import StaleJobSweep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")

app = Celery("modelfactory")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (
    Queue("default", routing_key="default"),
    Queue("gpu", routing_key="gpu"),
    Queue("attribution", routing_key="attribution"),  # influence scoring after training (GPU hosts)
)
app.autodiscover_tasks()
# Every worker re-queues training jobs whose worker died (at start, then periodically).
app.steps["worker"].add(StaleJobSweep)
