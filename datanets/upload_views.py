"""The upload pages: choose a file, preview what would be stored, confirm, read the report."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from datanets import uploads
from datanets.access import Action, can, get_for
from datanets.errors import DatanetError
from datanets.forms import UploadForm, column_choices
from datanets.models import UploadBatch


@login_required
@require_http_methods(["GET", "POST"])
def contribute(request, slug):
    """GET: the file form. POST a file: its preview (the file is kept, nothing stored).
    POST a token: check again with the chosen columns, or confirm and store."""
    datanet = get_for(request.user, slug, Action.CONTRIBUTE)
    form = UploadForm(None if "token" in request.POST else request.POST or None, request.FILES or None)
    context = {"datanet": datanet, "form": form, "policy": uploads.policy_text(datanet)}
    status = 200
    try:
        context["review"] = uploads.review(datanet, request.user)
        if "token" in request.POST:
            token = request.POST["token"]
            columns = column_choices(request.POST, datanet.schema)
            if request.POST.get("step") == "confirm":
                batch = uploads.confirm(request.user, datanet, token, columns)
                return redirect("datanets:upload", slug=slug, batch_id=batch.pk)
            context.update(token=token, preview=uploads.recheck(request.user, datanet, token, columns))
        elif request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            token, report = uploads.stage(request.user, datanet, upload.name, upload.read(), form.options())
            context.update(token=token, preview=report)
        elif request.method == "POST":
            status = 400
    except DatanetError as exc:
        context["refusal"], status = str(exc), exc.status
    except forms.ValidationError as exc:
        context["refusal"], status = " ".join(exc.messages), 400
    return render(request, "datanets/contribute.html", context, status=status)


@login_required
@require_GET
def upload_detail(request, slug, batch_id):
    datanet = get_for(request.user, slug)
    batch = get_object_or_404(UploadBatch, pk=batch_id, datanet=datanet)
    if batch.uploader_id != request.user.pk and not can(request.user, Action.MANAGE, datanet):
        raise PermissionDenied("Only the uploader and the owner see an upload's report.")
    template = "datanets/_upload_status.html" if request.headers.get("HX-Request") else "datanets/upload.html"
    status = 200 if batch.status != "failed" else 422
    context = {"datanet": datanet, "batch": batch, "next_steps": uploads.next_steps(batch)}
    return render(request, template, context, status=status)
