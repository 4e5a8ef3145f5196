"""Datanet pages. Each view starts from datanets.access and calls one service."""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datanets import services
from datanets.access import Action, can, get_for, role_of, visible_to
from datanets.forms import AccessRequestForm, DatanetForm, FilterForm, MemberForm, ModerationForm
from datanets.models import AccessRequest, Contribution, ContributorStanding, Membership

PAGE_SIZE = 25


def _flash_error(request, exc: services.DatanetError):
    messages.error(request, str(exc))


@require_GET
def datanet_list(request):
    form = FilterForm(request.GET or None)
    qs = visible_to(request.user).select_related("owner")
    if form.is_valid():
        data = form.cleaned_data
        if data["q"]:
            qs = qs.filter(Q(name__icontains=data["q"]) | Q(description__icontains=data["q"]))
        if data["visibility"]:
            qs = qs.filter(visibility=data["visibility"])
        if data["schema"]:
            qs = qs.filter(schema=data["schema"])
        if data["mine"] and request.user.is_authenticated:
            qs = qs.filter(Q(owner=request.user) | Q(memberships__user=request.user)).distinct()
        if data["domain"]:
            qs = [d for d in qs if data["domain"].lower() in d.domain_tags]  # JSON lists differ per database
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "datanets/list.html", {"form": form, "page": page})


@login_required
@require_http_methods(["GET", "POST"])
def datanet_create(request):
    form = DatanetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            datanet = services.create_datanet(request.user, **form.cleaned_data)
        except services.DatanetError as exc:
            form.add_error("slug", str(exc))
        else:
            messages.success(request, f"Datanet “{datanet.name}” created.")
            return redirect(datanet)
    return render(request, "datanets/form.html", {"form": form}, status=400 if form.errors else 200)


@require_GET
def datanet_detail(request, slug):
    datanet = get_for(request.user, slug)
    readable = can(request.user, Action.READ, datanet)
    records = None
    if readable:
        accepted = datanet.contributions.filter(status=Contribution.Status.ACCEPTED).select_related("contributor")
        records = Paginator(accepted.order_by("log_index"), PAGE_SIZE).get_page(request.GET.get("page"))
    stats = datanet.contributions.aggregate(
        records=Count("pk", filter=Q(status="accepted")),
        pending=Count("pk", filter=Q(status="pending")),
        contributors=Count("contributor", filter=Q(status="accepted"), distinct=True),
    )
    context = {
        "datanet": datanet, "records": records, "readable": readable, "stats": stats,
        "versions": datanet.versions.count(), "version": datanet.current_version,
        "role": role_of(request.user, datanet),
        "may": {a.name.lower(): can(request.user, a, datanet) for a in Action},
        "pending_request": request.user.is_authenticated
        and datanet.access_requests.filter(user=request.user, status="pending").exists(),
        "request_form": AccessRequestForm(),
    }  # fmt: skip
    if context["may"]["manage"]:
        context["admin_url"] = reverse("admin:datanets_datanet_change", args=[datanet.pk])
    template = "datanets/_records.html" if request.headers.get("HX-Request") else "datanets/detail.html"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def datanet_edit(request, slug):
    datanet = get_for(request.user, slug, Action.MANAGE)
    form = DatanetForm(request.POST or None, instance=datanet)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved.")
        return redirect(datanet)
    return render(request, "datanets/form.html", {"form": form, "datanet": datanet}, status=400 if form.errors else 200)


@login_required
@require_POST
def request_access(request, slug):
    datanet = get_for(request.user, slug)
    form = AccessRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role; keep the message under 2,000 characters.")
        return redirect(datanet)
    try:
        services.request_access(request.user, datanet, form.cleaned_data["role"], form.cleaned_data["message"])
    except services.DatanetError as exc:
        _flash_error(request, exc)
    else:
        messages.success(request, "Request sent. The owner will decide.")
    return redirect(datanet)


@login_required
@require_http_methods(["GET", "POST"])
def members(request, slug):
    datanet = get_for(request.user, slug, Action.MANAGE)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        action = request.POST.get("action", "set")
        try:
            if action.startswith("approve-") or action.startswith("deny-"):
                verb, _, pk = action.partition("-")
                req = get_object_or_404(AccessRequest, pk=int(pk) if pk.isdigit() else 0, datanet=datanet)
                services.decide_request(request.user, req, verb == "approve")
                messages.success(request, f"Request from {req.user} {'approved' if verb == 'approve' else 'denied'}.")
            elif form.is_valid():
                user = get_user_model().objects.filter(username=form.cleaned_data["username"]).first()
                if user is None:
                    raise services.DatanetError(f"No user named “{form.cleaned_data['username']}”.")
                if action == "remove":
                    services.remove_member(request.user, datanet, user)
                    messages.success(request, f"{user} removed.")
                else:
                    services.set_member(request.user, datanet, user, form.cleaned_data["role"])
                    messages.success(request, f"{user} is now {form.cleaned_data['role']}.")
        except services.DatanetError as exc:
            _flash_error(request, exc)
        return redirect("datanets:members", slug=slug)
    context = {
        "datanet": datanet, "form": form,
        "memberships": Membership.objects.filter(datanet=datanet).select_related("user"),
        "requests": datanet.access_requests.filter(status="pending").select_related("user"),
        "decided": datanet.access_requests.exclude(status="pending").select_related("user", "decided_by")[:20],
    }  # fmt: skip
    return render(request, "datanets/members.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def moderation(request, slug):
    datanet = get_for(request.user, slug, Action.VALIDATE)
    if request.method == "POST":
        form = ModerationForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                services.decide_many(request.user, datanet, d["ids"], d["decision"], d["reason"], d["malicious"])
                messages.success(request, f"{len(d['ids'])} contribution(s): {d['decision']} recorded.")
            except services.DatanetError as exc:
                _flash_error(request, exc)
        else:
            messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))
        return redirect("datanets:moderation", slug=slug)
    pending = datanet.contributions.filter(status="pending").select_related("contributor", "datanet").order_by("pk")
    page = Paginator(pending, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "datanets/moderation.html", {"datanet": datanet, "page": page})


@require_GET
def record(request, slug, pk):
    """One record as labelled fields, who gave it, its status and its place in the log.

    Accepted records are for readers of the Datanet; one still under review (or rejected)
    only for its contributor and validators. Everyone else gets a 404, as if it did not exist."""
    datanet = get_for(request.user, slug)
    row = get_object_or_404(Contribution.objects.select_related("contributor", "datanet"), pk=pk, datanet=datanet)
    if row.status == Contribution.Status.ACCEPTED:
        allowed = can(request.user, Action.READ, datanet)
    else:
        allowed = row.contributor_id == request.user.pk or can(request.user, Action.VALIDATE, datanet)
    if not allowed:
        raise Http404("No such record.")
    context = {"datanet": datanet, "row": row, "version": row.first_version(), "size": datanet.log.count()}
    return render(request, "datanets/record.html", context)


@require_GET
def reputation(request, slug):
    datanet = get_for(request.user, slug, Action.READ)
    rows = sorted(
        ContributorStanding.objects.filter(datanet=datanet).select_related("user"),
        key=lambda s: (-s.reputation, s.user.username),
    )
    return render(request, "datanets/reputation.html", {"datanet": datanet, "rows": rows})


@require_GET
def versions(request, slug):
    datanet = get_for(request.user, slug, Action.READ)
    problems = services.checked(datanet) if request.GET.get("verify") else None
    return render(
        request,
        "datanets/versions.html",
        {"datanet": datanet, "versions": datanet.versions.all(), "problems": problems},
    )


# Cells starting with these are formulas to spreadsheet programs (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


class _Echo:
    def write(self, value):
        return value


@require_GET
def export(request, slug, fmt):
    """Accepted records as JSONL or CSV. Stored text is inert; CSV cells that a
    spreadsheet would run as formulas are prefixed with a quote on the way out."""
    datanet = get_for(request.user, slug, Action.READ)
    rows = datanet.contributions.filter(status="accepted").order_by("log_index").values_list("content", flat=True)
    if fmt == "jsonl":
        lines = (json.dumps(c, ensure_ascii=False) + "\n" for c in rows.iterator())
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
    else:
        fields = {"text": ["text"], "instruction": ["instruction", "input", "output"], "chat": ["messages"]}
        header = fields[datanet.schema]
        writer = csv.writer(_Echo())

        def csv_rows():
            yield writer.writerow(header)
            for content in rows.iterator():
                yield writer.writerow(
                    [csv_safe(json.dumps(content[h]) if h == "messages" else content.get(h, "")) for h in header]
                )

        response = StreamingHttpResponse(csv_rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{datanet.slug}.{fmt}"'
    return response
