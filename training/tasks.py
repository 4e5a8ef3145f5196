from celery import shared_task

from core.jobs import JobTask
from training import hosts, services


@shared_task(base=JobTask, job_model="training.TrainingJob", name="training.run_training")
def run_training(job_id: int) -> str:
    """Claim the job (or take over one whose worker died) and run it through the engine."""
    return services.run(job_id)


@shared_task(name="training.join_training")
def join_training(job_id: int, attempt: int, rank: int, address: str, port: int) -> str:
    """Run one more host's share of a job across hosts (training/hosts.py); node 0 sent this."""
    return hosts.join(job_id, attempt, rank, address, port, log=services.append_log)
