"""Chat conversations, kept per user."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.jobs import Job


class Conversation(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    model_id = models.CharField(max_length=100, help_text="mf-<job id> or base-<id>.")
    title = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True, max_length=8000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"

    def history(self) -> list[dict]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages += [{"role": m.role, "content": m.content} for m in self.messages.filter(side="model")]
        return messages


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=[("user", "user"), ("assistant", "assistant")])
    side = models.CharField(max_length=8, default="model", help_text="'base' for the comparison answer.")
    content = models.TextField()
    params = models.JSONField(default=dict, blank=True)
    finish_reason = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class MergedExport(Job):
    """A background merge of an adapter into its base: full weights plus tokenizer, zipped."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="merged_exports")
    model_id = models.CharField(max_length=100)
    archive = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"merged export of {self.model_id}"
