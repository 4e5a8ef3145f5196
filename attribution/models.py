"""Attribution: citations behind answers, influence of contributions on models and
answers, reward epochs and their ledger, and roots anchored on an EVM chain."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.jobs import Job


class IndexState(models.Model):
    """Where a Datanet's retrieval index stands (the index itself is files under INDEX_ROOT)."""

    datanet = models.OneToOneField("datanets.Datanet", on_delete=models.CASCADE, related_name="index_state")
    generation = models.PositiveIntegerField(default=0, help_text="Bumps with every saved index generation.")
    records = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"index of {self.datanet} (gen {self.generation}, {self.records} records)"


class Citation(models.Model):
    """A record retrieved for an answer, stored with the message."""

    message = models.ForeignKey("serving.Message", on_delete=models.CASCADE, related_name="citations")
    contribution = models.ForeignKey("datanets.Contribution", on_delete=models.CASCADE, related_name="citations")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField(help_text="Fused retrieval score, 0..1.")
    bm25 = models.FloatField(default=0.0)
    dense = models.FloatField(default=0.0)
    used_in_prompt = models.BooleanField(default=False, help_text="Put into the prompt by 'ground the answer'.")

    class Meta:
        ordering = ["message", "rank"]
        constraints = [models.UniqueConstraint(fields=["message", "contribution"], name="one_citation_per_record")]

    def __str__(self) -> str:
        return f"#{self.contribution_id} cited by message {self.message_id}"


class TrainingAttribution(Job):
    """Proof of Attribution, training side: one run per trained model."""

    job = models.OneToOneField("training.TrainingJob", on_delete=models.CASCADE, related_name="attribution")
    method = models.CharField(max_length=40, blank=True)
    data_versions = models.JSONField(default=list, help_text="[{datanet, version, size, root}] the job trained on.")
    checkpoints = models.JSONField(default=list)
    sketch_dim = models.PositiveIntegerField(default=0)
    sketch_seed = models.PositiveIntegerField(default=0)
    folder = models.CharField(max_length=500, blank=True, help_text="Span index and sketches.")
    seconds = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"attribution of {self.job}"


class ContributionInfluence(models.Model):
    run = models.ForeignKey(TrainingAttribution, on_delete=models.CASCADE, related_name="scores")
    contribution = models.ForeignKey("datanets.Contribution", on_delete=models.CASCADE, related_name="influences")
    score = models.FloatField(help_text="TracIn influence on the eval loss; positive helped.")

    class Meta:
        ordering = ["-score"]
        constraints = [models.UniqueConstraint(fields=["run", "contribution"], name="one_score_per_run")]

    def __str__(self) -> str:
        return f"#{self.contribution_id}: {self.score:.4g}"


class AnswerAttribution(Job):
    """Proof of Attribution, answer side, for one assistant message."""

    chat_message = models.OneToOneField("serving.Message", on_delete=models.CASCADE, related_name="attribution")
    run = models.ForeignKey(TrainingAttribution, on_delete=models.SET_NULL, null=True, related_name="answers")
    method = models.CharField(max_length=60, blank=True)


class AnswerInfluence(models.Model):
    answer = models.ForeignKey(AnswerAttribution, on_delete=models.CASCADE, related_name="influences")
    contribution = models.ForeignKey(
        "datanets.Contribution", on_delete=models.CASCADE, related_name="answer_influences"
    )
    score = models.FloatField(help_text="Combined score, 0..1.")
    span_score = models.FloatField(default=0.0)
    grad_score = models.FloatField(default=0.0)
    spans = models.JSONField(default=list, help_text="[[answer_start, answer_end, record_start, record_end]].")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-score"]
        constraints = [models.UniqueConstraint(fields=["answer", "contribution"], name="one_influence_per_answer")]

    def __str__(self) -> str:
        return f"#{self.contribution_id} → answer {self.answer_id}: {self.score:.3f}"


class RewardEpoch(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    number = models.PositiveIntegerField(unique=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    pool = models.PositiveBigIntegerField(default=0, help_text="Reward pool in base units.")
    distributed = models.PositiveBigIntegerField(default=0)
    withheld = models.PositiveBigIntegerField(default=0, help_text="Reputation penalties, carried to the next epoch.")
    answers = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    root = models.CharField(max_length=64, blank=True)
    leaf_scheme = models.CharField(
        max_length=8, choices=[("json", "JSON rows, SHA-256 (RFC 9162), anchored as data"),
                               ("keccak", "ABI-encoded rows, keccak (OpenZeppelin), paid by the distributor")],
        default="keccak", help_text="How the ledger's leaves and root are computed; epochs closed before "
        "on-chain payment keep the JSON scheme.",
    )  # fmt: skip
    funded = models.PositiveBigIntegerField(
        default=0, help_text="Units sent to the distributor for this epoch: the rows with a wallet."
    )

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"epoch {self.number}"


class RewardEntry(models.Model):
    """One ledger row: a contributor's reward in one epoch (a leaf of the epoch's Merkle tree)."""

    epoch = models.ForeignKey(RewardEpoch, on_delete=models.PROTECT, related_name="entries")
    contributor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rewards")
    wallet = models.CharField(max_length=42, blank=True)
    influence = models.FloatField(help_text="Positive influence credited in this epoch.")
    reputation = models.FloatField()
    gross = models.PositiveBigIntegerField()
    penalty = models.PositiveBigIntegerField()
    amount = models.PositiveBigIntegerField()
    index = models.PositiveIntegerField(help_text="Leaf position in the epoch's tree.")
    salt = models.CharField(
        max_length=64, blank=True, default="",
        help_text="Random bits in the leaf (256, hex), shown only to its contributor: the sibling hashes in another "
        "person's proof cannot be brute-forced to learn this row's amount. Empty on rows written before salting.",
    )  # fmt: skip
    carried_in = models.PositiveBigIntegerField(
        default=0, help_text="Units carried from earlier epochs that closed while this person had no wallet."
    )
    claim_tx = models.CharField(max_length=66, blank=True, help_text="The claim transaction, once seen.")

    class Meta:
        ordering = ["epoch", "index"]
        constraints = [
            models.UniqueConstraint(fields=["epoch", "contributor"], name="one_entry_per_contributor"),
            models.UniqueConstraint(fields=["epoch", "index"], name="unique_entry_index"),
        ]

    def __str__(self) -> str:
        return f"{self.contributor} in epoch {self.epoch_id}: {self.amount}"


class Anchor(models.Model):
    class Kind(models.TextChoices):
        DATANET_VERSION = "datanet_version", "Datanet version"
        REWARD_EPOCH = "reward_epoch", "Reward epoch"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ANCHORED = "anchored", "Anchored"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    ref = models.CharField(max_length=80, help_text="datanet:<id>:v<n> or epoch:<n>.")
    version = models.OneToOneField(
        "datanets.DatanetVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="anchor"
    )
    epoch = models.OneToOneField(RewardEpoch, on_delete=models.PROTECT, null=True, blank=True, related_name="anchor")
    root = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    chain_id = models.PositiveBigIntegerField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66, blank=True)
    raw_tx = models.TextField(blank=True, help_text="The signed transaction, rebroadcast as is on retry.")
    nonce = models.PositiveBigIntegerField(null=True, blank=True)
    sender = models.CharField(max_length=42, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    anchored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "ref"], name="one_anchor_per_root")]

    def __str__(self) -> str:
        return f"{self.ref} ({self.status})"
