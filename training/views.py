"""Training pages: the form, the live dashboard, the jobs list with comparison, models."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from training import quotas, services, words
from training.forms import ADVANCED, TrainingForm
from training.models import DEMO_SUMMARY


@login_required
@require_http_methods(["GET", "POST"])
def new_job(request):
    form = TrainingForm(request.user, request.POST or None, datanet=request.GET.get("datanet", "")[:100])
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            job = services.start_job(
                request.user, name=d["name"], base_model=d["base_model"], datanets=list(d["datanets"]),
                cfg=form.config, preset=d["preset"], request_key=d["request_key"],
            )  # fmt: skip
        except services.TrainingError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            return redirect(job)
    estimate = None
    if form.is_bound and form.config is not None and not form.errors:
        estimate = services.estimate(form.config, form.cleaned_data["base_model"], 0)
    status = 400 if form.errors else 200
    context = {"form": form, "estimate": estimate, "advanced": ADVANCED, "usage": quotas.usage(request.user)}
    return render(request, "training/new.html", context, status=status)


@login_required
@require_POST
def estimate(request):
    """htmx: the memory and time estimate for the form's current values."""
    form = TrainingForm(request.user, request.POST)
    if not form.is_valid():
        errors = "; ".join(e for errs in form.errors.values() for e in errs)
        return render(request, "training/_estimate.html", {"errors": errors})
    records = sum(d.current_version.size for d in form.cleaned_data["datanets"] if d.current_version)
    data = services.estimate(form.config, form.cleaned_data["base_model"], records)
    return render(request, "training/_estimate.html", {"estimate": data, "records": records})


@login_required
@require_GET
def job_detail(request, job_id: int):
    job = get_object_or_404(services.visible_jobs(request.user), pk=job_id)
    context = {"job": job, "datasets": job.datasets.select_related("datanet", "version"),
               "compare_ids": services.compare_ids(request.user, job), "status_words": words.STATUS_WORDS}  # fmt: skip
    response = render(request, "training/job.html", context)
    if request.headers.get("X-Requested-With") == "fetch":
        # The page refreshing its own summary must not eat the flash meant for the next full page
        # (a cancel's "Cancel requested" arrives with the redirect that follows it).
        messages.get_messages(request).used = False
    return response


@login_required
@require_POST
def job_cancel(request, job_id: int):
    job = get_object_or_404(services.visible_jobs(request.user), pk=job_id)
    try:
        services.cancel(request.user, job)
        messages.success(request, "Cancel requested: the job stops after its current step.")
    except services.TrainingError as exc:
        messages.error(request, str(exc))
    return redirect(job)


@login_required
@require_GET
def job_list(request):
    jobs = services.visible_jobs(request.user).order_by("-created_at")[:200]
    return render(request, "training/jobs.html", {"jobs": jobs})


@login_required
@require_GET
def compare(request):
    ids = [int(x) for x in request.GET.get("jobs", "").split(",") if x.strip().isdigit()][:8]
    jobs = list(services.visible_jobs(request.user).filter(pk__in=ids))
    series = [{"id": j.pk, "name": f"#{j.pk} {j.name}", "points": [p.as_dict() for p in j.points.all()]} for j in jobs]
    return render(request, "training/compare.html", {"jobs": jobs, "series": json.dumps(series)})


@login_required
@require_GET
def job_points(request, job_id: int):
    """Every stored point of a job (what the chart must show)."""
    job = get_object_or_404(services.visible_jobs(request.user), pk=job_id)
    return JsonResponse({"points": [p.as_dict() for p in job.points.all()], "status": job.status})


@login_required
@require_GET
def models_list(request):
    jobs = services.visible_jobs(request.user).filter(status="succeeded").order_by("-finished_at")
    demo_note = DEMO_SUMMARY if jobs.filter(base_model__builtin=True).exists() else ""
    return render(request, "training/models.html", {"jobs": jobs, "demo_note": demo_note})


@login_required
@require_POST
def delete_model(request, job_id: int):
    job = services.visible_jobs(request.user).filter(pk=job_id, owner=request.user).first()
    if job is None:
        raise Http404("No such model.")
    services.delete_model(request.user, job)
    messages.success(request, f"Model “{job.name}” deleted.")
    return redirect("models")
