"""Site-wide pages: home (a landing page, or a person's own dashboard once signed in),
the API guide, health check and friendly error pages."""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from datanets.access import visible_to
from datanets.models import ROLE_RANK, Contribution, Datanet, Membership, Role
from serving.models import Conversation
from serving.registry import own_models
from training.services import visible_jobs

HOME_ROWS = 8


@require_GET
def home(request):
    if not request.user.is_authenticated:
        return render(request, "home.html")
    return render(request, "site/dashboard.html", dashboard(request.user))


def dashboard(user) -> dict:
    """What a signed-in person sees first: their Datanets, jobs and models, and what to do next."""
    datanets = my_datanets(user)
    jobs = list(visible_jobs(user).filter(owner=user).order_by("-created_at")[:HOME_ROWS])
    models = own_models(user)
    steps = get_started(user, datanets, jobs, models)
    return {
        "datanets": datanets, "jobs": jobs, "models": models[:HOME_ROWS],
        "steps": steps, "all_done": all(step["done"] for step in steps),
    }  # fmt: skip


def my_datanets(user) -> list[Datanet]:
    """Datanets the person owns or is a member of, with record and review counts, in one query."""
    mine = visible_to(user).filter(Q(owner=user) | Q(memberships__user=user)).values("pk")
    member_role = Membership.objects.filter(datanet=OuterRef("pk"), user=user).values("role")[:1]
    rows = list(
        Datanet.objects.filter(pk__in=mine)
        .annotate(
            records=Count("contributions", filter=Q(contributions__status=Contribution.Status.ACCEPTED)),
            pending=Count("contributions", filter=Q(contributions__status=Contribution.Status.PENDING)),
            member_role=Subquery(member_role),
        )
        .order_by("-updated_at")[:HOME_ROWS]
    )
    for datanet in rows:
        role = Role.OWNER if datanet.owner_id == user.pk else Role(datanet.member_role)
        datanet.my_role = role.label
        datanet.can_review = ROLE_RANK[role] >= ROLE_RANK[Role.VALIDATOR]
    return rows


def get_started(user, datanets, jobs, models) -> list[dict]:
    """The three steps of a first fine-tune, and which of them this person has done."""
    has_data = any(d.records for d in datanets) or Contribution.objects.filter(contributor=user).exists()
    training = any(not job.is_final for job in jobs)
    chatted = Conversation.objects.filter(user=user, model_id__in=[m.id for m in models]).exists()
    first_model = models[0].id if models else None
    step1 = {"link": "/datanets/", "action": "Find or create a Datanet"}
    if datanets and not has_data:  # a Datanet, still empty: the next thing is adding records to it
        step1 = {"link": reverse("datanets:contribute", args=[datanets[0].slug]),
                 "action": f"Add records to {datanets[0].name}"}  # fmt: skip
    return [
        {"title": "Create or join a Datanet and add data", "done": has_data,
         "text": "A Datanet is a shared collection of examples. Start your own, or ask to join one.", **step1},
        {"title": "Train a model", "done": bool(models),
         "text": "Your training job is running; its page shows the progress live." if training and not models
         else "Pick a base model and your data, then press Start. The defaults are a good first try.",
         "link": "/training/jobs/" if training and not models else "/training/new/",
         "action": "Watch your job" if training and not models else "Start training"},
        {"title": "Chat with it", "done": chatted,
         "text": "Ask your model questions; each answer shows the records it drew on.",
         "link": f"/chat/{first_model}/" if first_model else "/chat/", "action": "Open the chat"},
    ]  # fmt: skip


@require_GET
def api_guide(request):
    """Plain-words guide to the two APIs, with the way back to the site that Swagger lacks."""
    return render(request, "site/api.html", {"base_url": request.build_absolute_uri("/").rstrip("/")})


@require_GET
def healthz(request):
    """Liveness for load balancers: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def _error_page(request, status: int, title: str, text: str):
    if request.path.startswith("/api/") or request.path.startswith("/v1/"):
        return JsonResponse({"detail": text}, status=status)
    return render(request, "error.html", {"status": status, "title": title, "text": text}, status=status)


def bad_request(request, exception=None):
    return _error_page(request, 400, "Bad request", "The request could not be understood.")


def permission_denied(request, exception=None):
    return _error_page(request, 403, "Not allowed", "You do not have permission to see this page.")


def page_not_found(request, exception=None):
    return _error_page(request, 404, "Not found", "There is nothing here. Check the address.")


def server_error(request):
    return _error_page(request, 500, "Something went wrong", "The error was logged; please try again later.")


def csrf_failure(request, reason=""):
    return _error_page(
        request, 403, "Form expired", "The form was stale or came from another site. Reload the page and try again."
    )
