"""Proof of Attribution workflows: the training-side run after a job succeeds and the
answer-side scoring after each answer. Engines do the maths (attribution/engine);
this module loads rows, checks who may see what, and records results."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from attribution.citations import item
from attribution.indexing import answer_text
from attribution.models import AnswerAttribution, AnswerInfluence, ContributionInfluence, TrainingAttribution
from core import live
from core.jobs import JobStatus
from core.queue import enqueue
from datanets.access import readable_by
from training.models import TrainingJob
from training.services import pinned_records

log = logging.getLogger(__name__)
ANSWER_TOP = 20  # influence rows kept per answer
SPANS_FILE, SKETCHES_FILE, SKETCH_IDS_FILE = "spans.npz", "sketches.npy", "sketch_ids.npy"


def answers_group(user_id: int) -> str:
    return f"chat-answers.{user_id}"


# --- training side ---------------------------------------------------------------------


def start_training_attribution(job: TrainingJob) -> TrainingAttribution:
    versions = [
        {"datanet": d.datanet_id, "slug": d.datanet.slug, "version": d.version.number, "size": d.size, "root": d.root}
        for d in job.datasets.select_related("datanet", "version").order_by("pk")
    ]
    run, created = TrainingAttribution.objects.get_or_create(job=job, defaults={"data_versions": versions})
    if created:
        enqueue(run, "attribution.training_attribution")
    return run


def run_training_attribution(run_id: int) -> str:
    from attribution.engine.influence import training_influence
    from attribution.engine.spans import SpanIndex

    run = TrainingAttribution.objects.select_related("job__base_model").get(pk=run_id)
    if not run.claim():
        return "not claimed"
    job = run.job
    cfg = job.finetune_config()
    records = list(pinned_records(job))
    result = training_influence(
        job.base_model.source, job.output_dir, records, schema=cfg.schema, max_seq_len=cfg.max_seq_len,
        eval_fraction=cfg.eval_fraction, seed=cfg.seed, sketch_dim=settings.ATTRIBUTION_SKETCH_DIM,
        should_cancel=lambda: TrainingAttribution.objects.filter(pk=run.pk, cancel_requested=True).exists(),
    )  # fmt: skip
    folder = Path(job.output_dir) / "attribution"
    folder.mkdir(parents=True, exist_ok=True)
    ids = sorted(result.sketches)
    np.save(folder / SKETCH_IDS_FILE, np.asarray(ids, dtype=np.int64))
    np.save(
        folder / SKETCHES_FILE, np.asarray([result.sketches[i] for i in ids], dtype=np.float32).reshape(len(ids), -1)
    )
    SpanIndex.build((pk, answer_text(cfg.schema, content)) for pk, content in records).save(folder / SPANS_FILE)
    with transaction.atomic():
        ContributionInfluence.objects.filter(run=run).delete()
        ContributionInfluence.objects.bulk_create(
            [ContributionInfluence(run=run, contribution_id=pk, score=float(s)) for pk, s in result.scores.items()]
        )
        TrainingAttribution.objects.filter(pk=run.pk).update(
            method=result.method, checkpoints=result.checkpoints, sketch_dim=result.sketch_dim,
            sketch_seed=result.sketch_seed, folder=str(folder), seconds=result.seconds,
        )  # fmt: skip
    run.finish(
        JobStatus.SUCCEEDED, f"Scored {len(result.scores)} contributions over {len(result.checkpoints)} checkpoints."
    )
    live.notify_user(job.owner_id, f"Attribution for “{job.name}” is ready.", "success")
    return JobStatus.SUCCEEDED


def model_scores(user, job: TrainingJob) -> dict:
    """The training-side scores of a model, limited to records the viewer may read."""
    run = TrainingAttribution.objects.filter(job=job).first()
    if run is None:
        return {"status": "not started", "scores": []}
    rows = (
        run.scores.filter(contribution__datanet__in=readable_by(user))
        .select_related("contribution__datanet", "contribution__contributor")
        .order_by("-score")
    )
    return {
        "status": run.status, "message": run.message, "method": run.method, "data_versions": run.data_versions,
        "checkpoints": run.checkpoints, "seconds": run.seconds,
        "scores": [
            {"contribution": r.contribution_id, "datanet": r.contribution.datanet.slug,
             "contributor": r.contribution.contributor.get_username(), "score": r.score}
            for r in rows
        ],
    }  # fmt: skip


# --- answer side -----------------------------------------------------------------------


def start_answer_attribution(message) -> AnswerAttribution | None:
    job = TrainingJob.pk_from_model_id(message.conversation.model_id)
    if job is None or message.role != "assistant" or message.side != "model":
        return None
    run = TrainingAttribution.objects.filter(job_id=job).first()
    answer = AnswerAttribution.objects.create(chat_message=message, run=run)
    enqueue(answer, "attribution.answer_attribution")
    return answer


def _prompt(message) -> list[dict]:
    conversation = message.conversation
    earlier = conversation.messages.filter(side="model", created_at__lte=message.created_at).exclude(pk=message.pk)
    history = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
    return history + [{"role": m.role, "content": m.content} for m in earlier.order_by("created_at", "pk")]


def run_answer_attribution(answer_id: int) -> str:
    answer = AnswerAttribution.objects.select_related("chat_message__conversation", "run__job__base_model").get(
        pk=answer_id
    )
    if not answer.claim():
        return "not claimed"
    run = (
        answer.run
        or TrainingAttribution.objects.filter(
            job_id=TrainingJob.pk_from_model_id(answer.chat_message.conversation.model_id)
        ).first()
    )
    if run is None or run.status != JobStatus.SUCCEEDED:
        answer.finish(JobStatus.FAILED, "The model's training attribution is not ready yet, so answers are not scored.")
        _push_influence(answer)
        return JobStatus.FAILED
    try:
        _score_answer(answer, run)
    except Exception as exc:  # the page must hear the end either way; JobTask logs the traceback
        answer.finish(JobStatus.FAILED, f"Scoring failed: {exc}"[:500])
        _push_influence(answer)
        raise
    return JobStatus.SUCCEEDED


def _score_answer(answer: AnswerAttribution, run: TrainingAttribution) -> None:
    from attribution.engine.influence import AnswerScorer, combine, gradient_scores
    from attribution.engine.spans import SpanIndex, span_scores

    folder, text = Path(run.folder), answer.chat_message.content
    matches = SpanIndex.load(folder / SPANS_FILE).match(text)
    spans = span_scores(matches, text)
    ids = np.load(folder / SKETCH_IDS_FILE).tolist()
    sketches = dict(zip(ids, np.load(folder / SKETCHES_FILE), strict=True))
    job = run.job
    scorer = AnswerScorer(
        job.base_model.source, job.adapter_dir, run.sketch_dim, run.sketch_seed, job.finetune_config().max_seq_len
    )
    grads = gradient_scores(scorer.sketch(_prompt(answer.chat_message), text), sketches)
    combined = combine(spans, grads)
    top = sorted(((s, pk) for pk, s in combined.items() if s > 0), reverse=True)[:ANSWER_TOP]
    AnswerInfluence.objects.bulk_create(
        [
            AnswerInfluence(
                answer=answer,
                contribution_id=pk,
                score=score,
                span_score=spans.get(pk, 0.0),
                grad_score=grads.get(pk, 0.0),
                spans=[[s.answer_start, s.answer_end, s.record_start, s.record_end] for s in matches.get(pk, [])],
            )
            for score, pk in top
        ]  # fmt: skip
    )
    AnswerAttribution.objects.filter(pk=answer.pk).update(run=run, method="4-gram spans + LoRA gradient sketch cosine")
    answer.finish(JobStatus.SUCCEEDED, f"{len(top)} contributions influenced this answer.")
    _push_influence(answer)


def answer_influence(user, message) -> dict:
    """'Influenced by' for one answer, only records the viewer may read."""
    answer = AnswerAttribution.objects.filter(chat_message=message).first()
    if answer is None:
        return {"status": "none", "items": []}
    rows = (
        answer.influences.filter(contribution__datanet__in=readable_by(user))
        .select_related("contribution__datanet", "contribution__contributor")
        .order_by("-score")
    )
    items = [
        item(r.contribution, message.content, r.score, span_score=round(r.span_score, 4),
             grad_score=round(r.grad_score, 4), answer_spans=[s[:2] for s in r.spans])
        for r in rows
    ]  # fmt: skip
    return {"status": answer.status, "note": answer.message, "items": items}


def _push_influence(answer: AnswerAttribution) -> None:
    message = answer.chat_message
    user = message.conversation.user
    live.send(answers_group(user.pk), {"type": "influence", **answer_influence(user, message), "message": message.pk})
