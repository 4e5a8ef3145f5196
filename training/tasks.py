from celery import shared_task

from core.jobs import JobTask
from training import services


@shared_task(base=JobTask, job_model="training.TrainingJob", name="training.run_training")
def run_training(job_id: int) -> str:
    """Claim the job (or take over one whose worker died) and run it through the engine."""
    return services.run(job_id)
