"""/ws/training/jobs/<id>/: every stored point first, then live ones."""

from __future__ import annotations

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from training.services import job_group, visible_jobs


class TrainingJobConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        job = await database_sync_to_async(self._job)()
        if job is None:
            await self.close()  # anonymous, not the owner, or no such job: refused alike
            return
        # Join first, then read the history: a point stored in between arrives twice at
        # worst (the page merges by step), never zero times.
        self.group = job_group(self.job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        history = await database_sync_to_async(self._history)(job)
        await self.send(text_data=json.dumps(history))

    def _job(self):
        return visible_jobs(self.scope.get("user")).filter(pk=self.job_id).first()

    def _history(self, job) -> dict:
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

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(
            text_data=json.dumps({"type": "error", "error": "This channel only sends; it takes no messages."})
        )

    async def point(self, event):
        await self.send(text_data=json.dumps({"type": "point", "point": event["point"]}))

    async def log(self, event):
        await self.send(text_data=json.dumps({"type": "log", "line": event["line"]}))

    async def status(self, event):
        await self.send(
            text_data=json.dumps({"type": "status", "status": event["status"], "message": event["message"]})
        )
