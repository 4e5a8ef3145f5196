"""Datanets: community datasets with roles, access requests, contributions,
validation votes, contributor standing and a tamper-evident log of versions."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from core.jobs import Job


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PERMISSIONED = "permissioned", "Permissioned"
    PRIVATE = "private", "Private"


class Schema(models.TextChoices):
    TEXT = "text", "Plain text"
    INSTRUCTION = "instruction", "Instruction (instruction / input / output)"
    CHAT = "chat", "Chat (messages)"


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    CONTRIBUTOR = "contributor", "Contributor"
    VALIDATOR = "validator", "Validator"
    OWNER = "owner", "Owner"


class ReviewPolicy(models.TextChoices):
    TRUSTED = "trusted", "Uploads by the owner and validators are accepted at once; others wait for a validator"
    VOTES = "votes", "Every upload waits for validator votes, the owner's too"


class AfterRemoval(models.TextChoices):
    BLOCK = "block", "Block them: chat and export stop for that person, with a message saying why"
    ALLOW = "allow", "Allow them: models stay usable by whoever trained them (e.g. under an open licence)"


ROLE_RANK = {Role.VIEWER: 1, Role.CONTRIBUTOR: 2, Role.VALIDATOR: 3, Role.OWNER: 4}


class Datanet(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    domain_tags = models.JSONField(default=list, blank=True, help_text="Domains, e.g. legal, medical.")
    licence = models.CharField(max_length=80, help_text="The licence the records are shared under, e.g. CC-BY-4.0.")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    schema = models.CharField(max_length=16, choices=Schema.choices, default=Schema.INSTRUCTION)
    review_policy = models.CharField(
        max_length=16, choices=ReviewPolicy.choices, default=ReviewPolicy.TRUSTED, verbose_name="Review of uploads"
    )
    review_votes = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        verbose_name="Votes needed",
        help_text="How many validators (never the uploader) must accept a record that waits for review.",
    )
    models_after_removal = models.CharField(
        max_length=8, choices=AfterRemoval.choices, default=AfterRemoval.BLOCK,
        verbose_name="Models of people who lose access",
        help_text="What happens to models trained on this Datanet by someone whose access is later removed.",
    )  # fmt: skip
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_datanets")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("datanets:detail", args=[self.slug])

    @property
    def current_version(self):
        return self.versions.order_by("-number").first()


class Membership(models.Model):
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datanet_memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["datanet", "user"], name="one_membership_per_user")]
        ordering = ["datanet", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} – {self.role} of {self.datanet}"


class AccessRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="access_requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_requests")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CONTRIBUTOR)
    message = models.TextField(blank=True, max_length=2000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["datanet", "user"], condition=models.Q(status="pending"), name="one_pending_request"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.datanet} ({self.status})"


class UploadBatch(Job):
    """One uploaded file. Large files are parsed by a Celery task; progress lives here."""

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="uploads")
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    filename = models.CharField(max_length=255)
    file_format = models.CharField(max_length=16)
    size_bytes = models.PositiveBigIntegerField(default=0)
    options = models.JSONField(default=dict, blank=True, help_text="Format options and column mapping.")
    stored_file = models.CharField(max_length=500, blank=True, help_text="Path of a file queued for parsing.")
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    rows_added = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{row, field, message}], first 200.")
    error_count = models.PositiveIntegerField(default=0)

    class Meta(Job.Meta):
        verbose_name_plural = "upload batches"

    def __str__(self) -> str:
        return f"{self.filename} → {self.datanet}"


class Contribution(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="contributions")
    contributor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contributions")
    content = models.JSONField(help_text="The record, normalised to the Datanet's schema.")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the canonical JSON of content.")
    batch = models.ForeignKey(UploadBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="rows")
    source_file = models.CharField(max_length=255, blank=True)
    source_row = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    needs_votes = models.PositiveSmallIntegerField(default=1, help_text="Accepting votes needed to accept.")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    log_index = models.PositiveIntegerField(null=True, blank=True, help_text="Position in the Merkle log.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["datanet", "content_hash"], name="unique_record_per_datanet"),
            models.UniqueConstraint(fields=["datanet", "log_index"], name="unique_log_position"),
        ]
        indexes = [models.Index(fields=["datanet", "status", "id"])]

    def __str__(self) -> str:
        return f"#{self.pk} in {self.datanet}"

    def first_version(self):
        """The first version of the Datanet that includes this record, if any."""
        if self.log_index is None:
            return None
        return self.datanet.versions.filter(size__gt=self.log_index).order_by("number").first()


class Validation(models.Model):
    class Vote(models.TextChoices):
        ACCEPT = "accept", "Accept"
        REJECT = "reject", "Reject"

    contribution = models.ForeignKey(Contribution, on_delete=models.CASCADE, related_name="validations")
    validator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="validations")
    vote = models.CharField(max_length=8, choices=Vote.choices)
    reason = models.CharField(max_length=500, blank=True)
    malicious = models.BooleanField(default=False, help_text="Spam, poisoning or abuse: cuts reputation.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contribution", "validator"], name="one_vote_per_validator")]

    def __str__(self) -> str:
        return f"{self.validator} {self.vote}s #{self.contribution_id}"


class ContributorStanding(models.Model):
    """Counts behind a contributor's reputation in one Datanet (see reputation())."""

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="standings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="standings")
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    malicious = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["datanet", "user"], name="one_standing_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.datanet}: {self.reputation:.2f}"

    @property
    def reputation(self) -> float:
        return reputation(self.accepted, self.rejected, self.malicious)


def reputation(accepted: int, rejected: int, malicious: int) -> float:
    """Laplace-smoothed acceptance rate minus 0.25 per malicious rejection, in [0, 1].

    A newcomer starts at 0.5; ten accepted records lift it to ~0.92; one malicious
    rejection costs as much as several honest mistakes.
    """
    score = (accepted + 1) / (accepted + rejected + 2) - 0.25 * malicious
    return max(0.0, min(1.0, score))


class LogEntry(models.Model):
    """One leaf of a Datanet's append-only Merkle log (RFC 9162 leaf hash of the record)."""

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="log")
    index = models.PositiveIntegerField()
    contribution = models.OneToOneField(Contribution, on_delete=models.PROTECT, related_name="log_entry")
    leaf_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["datanet", "index"], name="unique_leaf_index")]

    def __str__(self) -> str:
        return f"{self.datanet} leaf {self.index}"


class DatanetVersion(models.Model):
    """A signed-off state of the log: the first `size` leaves and their root."""

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    root = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["datanet", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.datanet} v{self.number} ({self.size} records, root {self.root[:12]}…)"
