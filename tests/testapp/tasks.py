from celery import shared_task
from django.db.models import F

from core.jobs import JobStatus, JobTask
from tests.testapp.models import SampleJob


@shared_task(base=JobTask, job_model="testapp.SampleJob", name="testapp.run_sample_job")
def run_sample_job(job_id: int, fail: bool = False) -> str:
    job = SampleJob.objects.get(pk=job_id)
    if not job.claim():
        return "not claimed"
    SampleJob.objects.filter(pk=job_id).update(runs=F("runs") + 1)
    if fail:
        raise RuntimeError("the sample job was told to fail")
    job.finish(JobStatus.SUCCEEDED, f"done: {job.payload}")
    return "done"
