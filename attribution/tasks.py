from celery import shared_task

from attribution import anchoring, indexing, services
from core.jobs import JobTask

ANCHOR_MAX_BACKOFF = 600


@shared_task(name="attribution.sync_index", acks_late=True)
def sync_index_task(datanet_id: int) -> int:
    """Bring one Datanet's retrieval index in step with its accepted records."""
    state = indexing.sync_index(datanet_id)
    return state.generation if state else 0


@shared_task(base=JobTask, job_model="attribution.TrainingAttribution", name="attribution.training_attribution")
def training_attribution_task(run_id: int) -> str:
    """Score every training contribution's influence on a finished model (TracIn over LoRA)."""
    return services.run_training_attribution(run_id)


@shared_task(base=JobTask, job_model="attribution.AnswerAttribution", name="attribution.answer_attribution")
def answer_attribution_task(answer_id: int) -> str:
    """Score which contributions influenced one answer (spans + gradient sketches)."""
    return services.run_answer_attribution(answer_id)


@shared_task(bind=True, name="attribution.anchor", max_retries=None)
def anchor_task(self, anchor_id: int) -> str:
    """Send (or resend) an anchor; on a chain error keep it PENDING and retry with backoff."""
    from attribution.engine.chain import ChainError

    try:
        anchor = anchoring.attempt(anchor_id)
        return anchor.status if anchor else "gone"
    except ChainError as exc:
        if self.request.is_eager:  # no broker (a bare manage.py): stays PENDING for `anchor_pending`
            return f"pending: {exc}"
        raise self.retry(exc=exc, countdown=min(ANCHOR_MAX_BACKOFF, 5 * 2 ** min(self.request.retries, 8))) from None
