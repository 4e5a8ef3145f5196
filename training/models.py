"""Base models, training jobs (pinned to Datanet versions) and their metric points."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from core.jobs import Job, JobStatus
from training import words

DEMO_SUMMARY = (
    "A small demo model (3 million parameters) trained on this server on the fine-tuning glossary: it answers "
    "glossary questions and can learn a few new facts in a Quick job, but it knows nothing else."
)


def _pk_after(prefix: str, model_id) -> int | None:
    """The number in a model id `<prefix>-<number>` (mf-12, base-3); None for anything else."""
    head, _, number = str(model_id).partition("-")
    return int(number) if head == prefix and number.isdigit() else None


class BaseModel(models.Model):
    """A base model jobs may start from: a Hugging Face id or a local folder."""

    name = models.CharField(max_length=120, help_text="Display name.")
    source = models.CharField(max_length=500, unique=True, help_text="Hugging Face id or absolute local folder.")
    architecture = models.CharField(max_length=40, default="llama", help_text="config.json model_type.")
    parameter_count = models.PositiveBigIntegerField(default=0)
    context_length = models.PositiveIntegerField(default=2048)
    chat_template = models.TextField(blank=True, help_text="Jinja chat template; empty uses the tokenizer's.")
    licence = models.CharField(max_length=80, blank=True)
    methods = models.JSONField(default=list, help_text='Supported methods, e.g. ["lora", "qlora", "dora"].')
    description = models.CharField(
        max_length=300, blank=True, help_text="One sentence for people choosing it: what it is good at, what not."
    )
    builtin = models.BooleanField(default=False, help_text="Generated locally by the seed (runs offline on a CPU).")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["parameter_count", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def model_id(self) -> str:
        """Its name in the chat page, /v1 and the REST API."""
        return f"base-{self.pk}"

    @staticmethod
    def pk_from_model_id(model_id) -> int | None:
        return _pk_after("base", model_id)

    @property
    def is_local(self) -> bool:
        """A folder on the worker's disk (never shown to non-staff), not a Hugging Face id."""
        return self.source.startswith("/")

    @property
    def hub_id(self) -> str:
        """The Hugging Face id people may look up; empty for a local folder."""
        return "" if self.is_local else self.source

    @property
    def summary(self) -> str:
        """One sentence on what it can and cannot do."""
        return DEMO_SUMMARY if self.builtin else self.description

    @property
    def choice_label(self) -> str:
        if self.builtin:
            return f"{self.name} — small demo model"
        return f"{self.name} — {self.size_label} parameters" if self.parameter_count else self.name

    @property
    def size_label(self) -> str:
        n = self.parameter_count
        for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
            if n >= div:
                return f"{n / div:.1f}{unit}"
        return str(n)


class TrainingJob(Job):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_jobs")
    name = models.CharField(max_length=120)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="jobs")
    preset = models.CharField(max_length=20, blank=True)
    config = models.JSONField(help_text="FinetuneConfig as JSON (also written to run_config.json).")
    request_key = models.CharField(max_length=64, help_text="Idempotency key: a double submission starts one job.")
    record_count = models.PositiveIntegerField(default=0)
    output_dir = models.CharField(max_length=500, blank=True)
    adapter_dir = models.CharField(max_length=500, blank=True)
    final_metrics = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    last_step = models.PositiveIntegerField(default=0)
    log_tail = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta(Job.Meta):
        constraints = [models.UniqueConstraint(fields=["owner", "request_key"], name="one_job_per_submission")]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    def get_absolute_url(self) -> str:
        return reverse("training:job", args=[self.pk])

    def finetune_config(self):
        """The FinetuneConfig this job was started with (validated when it was built, stored as a dict)."""
        from training.engine.config import FinetuneConfig

        return FinetuneConfig.from_dict(self.config)

    def retire_model(self) -> bool:
        """Take a succeeded job's model out of service (the owner deleted it), once."""
        return self._move([JobStatus.SUCCEEDED], status=JobStatus.CANCELLED, adapter_dir="",
                          message="Deleted by its owner.")  # fmt: skip

    @property
    def status_words(self) -> str:
        return words.STATUS_WORDS.get(self.status, self.status)

    @property
    def state_text(self) -> str:
        """Where the run stands, in words (beside the progress bar); no ETA once it is over."""
        step = self.last_step
        if self.status == JobStatus.QUEUED:
            return "Waiting for a training worker to pick it up."
        if self.status == JobStatus.SUCCEEDED:
            return f"Finished after {step:,} steps."
        if self.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            how = "it failed" if self.status == JobStatus.FAILED else "cancelled"
            return f"Stopped at step {step:,} ({how})." if step else f"Stopped before the first step ({how})."
        left = words.duration(self.eta_seconds)
        return f"Step {step:,} · {round(self.progress * 100)}% done" + (f" · {left} left" if left else "")

    @property
    def metric_items(self) -> list[tuple[str, str]]:
        return words.metric_items(self.final_metrics)

    def public_config(self) -> dict:
        """The run's settings for people and the API: the base model by name or Hub id, never a server path."""
        shown = self.base_model.hub_id or self.base_model.name
        return {**self.config, "base_model": shown} if "base_model" in self.config else dict(self.config)

    @property
    def model_id(self) -> str:
        """The name of the model this job trained, in the chat page, /v1 and the REST API."""
        return f"mf-{self.pk}"

    @staticmethod
    def pk_from_model_id(model_id) -> int | None:
        """The job behind `mf-<job id>`; None for a base model or anything else."""
        return _pk_after("mf", model_id)


class TrainingDataset(models.Model):
    """A Datanet version pinned by a job: exactly the records it trained on."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="datasets")
    datanet = models.ForeignKey("datanets.Datanet", on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey("datanets.DatanetVersion", on_delete=models.PROTECT, related_name="+")
    size = models.PositiveIntegerField()
    root = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "datanet"], name="one_version_per_datanet")]

    def __str__(self) -> str:
        return f"{self.datanet} v{self.version.number}"


class MetricPoint(models.Model):
    """One logged step; train and eval values at the same step merge into one row."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="points")
    step = models.PositiveIntegerField()
    epoch = models.FloatField(null=True)
    train_loss = models.FloatField(null=True)
    eval_loss = models.FloatField(null=True)
    learning_rate = models.FloatField(null=True)
    grad_norm = models.FloatField(null=True)
    tokens_per_second = models.FloatField(null=True)
    progress = models.FloatField(null=True)
    eta_seconds = models.FloatField(null=True)
    created_at = models.DateTimeField(auto_now=True)

    FIELDS = ("epoch", "train_loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "progress",
              "eta_seconds")  # fmt: skip

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="one_point_per_step")]

    def __str__(self) -> str:
        return f"job {self.job_id} step {self.step}"

    def as_dict(self) -> dict:
        return {"step": self.step, **{f: getattr(self, f) for f in self.FIELDS}}
