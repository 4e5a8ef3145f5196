"""Queue work after the current transaction commits, by task name.

Services never import their own tasks: they name them, and CELERY_TASK_ROUTES
(settings) sends each to its queue. A job's row records the Celery task id, so
an operator can find the message behind any job. This is the one place every
background job passes through, and so the place a per-user quota check belongs.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def _task(name: str):
    app = current_app
    if name not in app.tasks:
        app.loader.import_default_modules()  # a web process has not imported the tasks modules yet
    return app.tasks[name]


def enqueue_task(name: str, *args, **options) -> None:
    """Send task `name` with `args` once the surrounding transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _task(name).apply_async(args, **options))


def enqueue(job, name: str, **options) -> None:
    """Queue task `name` for a Job row after commit and record its Celery task id on the row."""
    job_class, pk = type(job), job.pk

    def send():
        result = _task(name).apply_async((pk,), **options)
        job_class._default_manager.filter(pk=pk).update(celery_task_id=result.id)

    transaction.on_commit(send)
