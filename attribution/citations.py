"""Citations: the Datanet records behind an answer, only those the viewer may read.

Which Datanets a model may cite is fixed by its training job's pins; which of those
a viewer sees is datanets.access.readable_by, asked before retrieval (the retrieval
worker never searches an unreadable Datanet, so nothing about it can leak, not even
a count) and again when stored citations are read back.
"""

from __future__ import annotations

from django.db.models import Count

from attribution.indexing import record_text
from attribution.models import Citation, IndexState
from datanets.access import readable_by
from datanets.models import Contribution
from training.models import TrainingDataset, TrainingJob

EXCERPT_CHARS = 300
GROUNDING_CHARS = 1200


def model_datanet_ids(model_id: str) -> list[int]:
    """The Datanets a model was trained on (none for a base model)."""
    job = TrainingJob.pk_from_model_id(model_id)
    if job is None:
        return []
    return list(TrainingDataset.objects.filter(job_id=job).values_list("datanet_id", flat=True))


def citable_datanets(user, model_id: str) -> list[int]:
    ids = model_datanet_ids(model_id)
    return list(readable_by(user).filter(pk__in=ids).values_list("pk", flat=True)) if ids else []


def still_indexing(datanet_ids: list[int]) -> bool:
    """True while a Datanet's newest accepted records are not yet searchable (the index sync
    runs in the background a few seconds after an upload is accepted)."""
    indexed = dict(IndexState.objects.filter(datanet_id__in=datanet_ids).values_list("datanet_id", "records"))
    accepted = (
        Contribution.objects.filter(datanet_id__in=datanet_ids, status=Contribution.Status.ACCEPTED)
        .values("datanet_id")
        .annotate(n=Count("pk"))
    )
    return any(row["n"] > indexed.get(row["datanet_id"], 0) for row in accepted)


def readable_hits(user, hits: list[dict], query: str, answer: str = "") -> list[dict]:
    """Hits from the retrieval worker → citation items, dropping anything the viewer may not read."""
    rows = Contribution.objects.filter(
        pk__in=[h["id"] for h in hits], status=Contribution.Status.ACCEPTED, datanet__in=readable_by(user)
    ).select_related("datanet", "contributor")
    by_id = {row.pk: row for row in rows}
    items = []
    for hit in hits:
        row = by_id.get(hit["id"])
        if row is None:
            continue
        items.append(item(row, query + "\n" + answer, hit["score"], hit.get("bm25", 0.0), hit.get("dense", 0.0)))
    return items


def item(row: Contribution, terms: str, score: float, bm25: float = 0.0, dense: float = 0.0, **extra) -> dict:
    from attribution.engine.retrieve import excerpt, highlight

    text = record_text(row.datanet.schema, row.content)
    window, spans = excerpt(text, highlight(text, terms), EXCERPT_CHARS)
    return {
        "contribution": row.pk,
        "datanet": {"slug": row.datanet.slug, "name": row.datanet.name},
        "contributor": row.contributor.get_username(),
        "excerpt": window,
        "spans": [list(s) for s in spans],
        "score": round(float(score), 4),
        "bm25": round(float(bm25), 4),
        "dense": round(float(dense), 4),
        "url": f"/datanets/{row.datanet.slug}/records/{row.pk}/",
        **extra,
    }


def grounded(history: list[dict], items: list[dict]) -> list[dict]:
    """The conversation with the retrieved records put in front as numbered sources."""
    if not items:
        return history
    rows = {
        r.pk: r
        for r in Contribution.objects.filter(pk__in=[i["contribution"] for i in items]).select_related("datanet")
    }
    lines = ["Answer using these sources when they help:"]
    for n, i in enumerate(items, 1):
        row = rows[i["contribution"]]
        lines.append(f"[{n}] {record_text(row.datanet.schema, row.content)[:GROUNDING_CHARS]}")
    sources = {"role": "system", "content": "\n".join(lines)}
    if history and history[0]["role"] == "system":
        return [{"role": "system", "content": history[0]["content"] + "\n\n" + sources["content"]}, *history[1:]]
    return [sources, *history]


def store(message, items: list[dict], used: bool) -> None:
    Citation.objects.bulk_create(
        [
            Citation(
                message=message,
                contribution_id=i["contribution"],
                rank=n,
                score=i["score"],
                bm25=i["bm25"],
                dense=i["dense"],
                used_in_prompt=used,
            )
            for n, i in enumerate(items)
        ],  # fmt: skip
        ignore_conflicts=True,
    )


def stored_for(user, message) -> list[dict]:
    """A message's citations as the viewer may see them now."""
    readable = readable_by(user).values_list("pk", flat=True)
    answer = message.content
    question = message.conversation.messages.filter(role="user", created_at__lte=message.created_at).last()
    terms = (question.content if question else "") + "\n" + answer
    return [
        item(c.contribution, terms, c.score, c.bm25, c.dense, used_in_prompt=c.used_in_prompt)
        for c in message.citations.select_related("contribution__datanet", "contribution__contributor").filter(
            contribution__datanet_id__in=readable
        )
    ]
