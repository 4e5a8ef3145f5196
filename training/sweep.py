"""A Celery worker bootstep: every worker re-queues training jobs whose worker died, at start and then
every TRAINING_SWEEP_SECONDS, on the worker's own timer (no beat process, so every deployment that runs
workers has it). Registered by modelfactory/celery.py; Django is imported only when it runs."""

from __future__ import annotations

import logging

from celery import bootsteps

logger = logging.getLogger(__name__)


class StaleJobSweep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        from django.conf import settings

        self.sweep()
        self.tref = worker.timer.call_repeatedly(settings.TRAINING_SWEEP_SECONDS, self.sweep, priority=10)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def sweep(self) -> None:
        from django.db import close_old_connections

        from training.services import requeue_stale_jobs

        try:
            for pk in requeue_stale_jobs():
                logger.warning("training job %s lost its worker; queued again to resume", pk)
        except Exception:  # a database hiccup must not stop the worker; the next sweep retries
            logger.exception("the stale training job sweep failed")
        finally:
            close_old_connections()
