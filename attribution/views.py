"""Pages: my contributions and rewards, a record's influence, anchors and their verification."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from attribution import anchoring, distribution, rewards
from attribution.access import readable_record, visible_anchors
from attribution.indexing import record_text
from attribution.models import ContributionInfluence, RewardEntry, RewardEpoch
from datanets.models import Contribution
from training.services import visible_jobs


@login_required
@require_GET
def mine(request):
    rows = (
        Contribution.objects.filter(contributor=request.user)
        .select_related("datanet")
        .annotate(training=Sum("influences__score"), answers=Count("answer_influences", distinct=True))
        .order_by("-answers", "-training", "-pk")[:200]
    )
    contributions = [{"row": r, "text": record_text(r.datanet.schema, r.content)[:160]} for r in rows]
    entries = RewardEntry.objects.filter(contributor=request.user).select_related("epoch", "epoch__anchor")
    total = entries.aggregate(total=Sum("amount"))["total"] or 0
    rows = []
    for entry in entries:
        state = distribution.claim_state(entry)
        payload = distribution.claim_payload(entry) if state == "unclaimed" else None
        rows.append({"e": entry, "state": state, "words": distribution.state_words(entry, state), "claim": payload})
    context = {"contributions": contributions, "rows": rows, "total": total,
               "relay": settings.REWARD_RELAY_CLAIMS}  # fmt: skip
    return render(request, "attribution/mine.html", context)


@login_required
@require_POST
def claim(request, epoch_number: int):
    """Claim one epoch's reward through the server (it sends the transaction and pays the gas)."""
    entry = distribution.own_entry(request.user, epoch_number)
    if entry is None:
        raise Http404("You have no reward in this epoch.")
    try:
        tx_hash = distribution.relay_claim(entry)
    except distribution.ClaimRefused as exc:
        messages.error(request, f"Epoch {epoch_number} was not claimed. {exc}")
    else:
        messages.success(
            request, f"Claimed: {entry.amount:,} units of epoch {epoch_number} sent to {entry.wallet} "
            f"(transaction {tx_hash}).",
        )  # fmt: skip
    return redirect("attribution:mine")


@require_GET
def record(request, contribution_id: int):
    row = readable_record(request.user, contribution_id)
    scores = (
        ContributionInfluence.objects.filter(contribution=row, run__job__in=visible_jobs(request.user))
        .select_related("run__job")
        .order_by("-score")
    )
    context = {"row": row, "text": record_text(row.datanet.schema, row.content), "scores": scores,
               "answers": row.answer_influences.count()}  # fmt: skip
    return render(request, "attribution/record.html", context)


@require_GET
def anchors(request):
    return render(request, "attribution/anchors.html", {"anchors": visible_anchors(request.user)[:200]})


@require_GET
def anchor(request, anchor_id: int):
    row = visible_anchors(request.user).filter(pk=anchor_id).first()
    if row is None:
        raise Http404("No such anchor.")
    return render(request, "attribution/anchor.html", {"anchor": row, "result": anchoring.checked(row)})


@require_GET
def epochs(request):
    return render(request, "attribution/epochs.html", {"epochs": RewardEpoch.objects.select_related("anchor")[:100]})


@staff_member_required
@require_POST
def close_epoch(request):
    raw = request.POST.get("pool", "").strip()
    try:
        epoch = rewards.close_epoch(int(raw) if raw else None)
    except (ValueError, rewards.RewardError) as exc:
        messages.error(request, f"The epoch was not closed: {exc}")
    else:
        messages.success(request, f"Epoch {epoch.number} closed: {epoch.distributed:,} units to contributors.")
    return redirect("attribution:epochs")
