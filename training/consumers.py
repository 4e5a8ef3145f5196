"""/ws/training/jobs/<id>/: every stored point first, then live ones."""

from __future__ import annotations

from core.live import LiveConsumer
from training.services import job_group, visible_jobs


class TrainingJobConsumer(LiveConsumer):
    def subject(self):
        job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        return visible_jobs(self.scope.get("user")).filter(pk=job_id).first()

    def group_for(self, job) -> str:
        return job_group(job.pk)

    def history(self, job) -> dict:
        job.refresh_from_db()  # points and status may have moved since the access check
        return {
            "type": "history",
            "points": [p.as_dict() for p in job.points.all()],
            "status": job.status,
            "message": job.message,
            "progress": job.progress,
            "eta_seconds": job.eta_seconds,
            "log": job.log_tail.splitlines(),
        }
