"""Keeping each Datanet's retrieval index in step with its accepted records.

The database is the record of truth; an index is files under INDEX_ROOT/<datanet id>/
(usearch vectors + bm25s + texts, written atomically by generation, see
attribution/engine/store.py). A sync compares the accepted records with what the
index holds and embeds only the difference, so it is idempotent, survives restarts,
and a lost folder is rebuilt by the next sync (`manage.py sync_indexes`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings

from attribution.models import IndexState
from core.queue import enqueue_task
from datanets.models import Contribution, Datanet

log = logging.getLogger(__name__)


def record_text(schema: str, content: dict) -> str:
    """The words of a record that retrieval and span matching look at."""
    if schema == "text":
        return str(content.get("text", ""))
    if schema == "instruction":
        parts = [content.get("instruction", ""), content.get("input", ""), content.get("output", "")]
        return "\n".join(str(p) for p in parts if p)
    return "\n".join(str(m.get("content", "")) for m in content.get("messages", []))


def answer_text(schema: str, content: dict) -> str:
    """What a model learns to say from a record (the span matcher's side)."""
    if schema == "text":
        return str(content.get("text", ""))
    if schema == "instruction":
        return str(content.get("output", ""))
    return "\n".join(str(m.get("content", "")) for m in content.get("messages", []) if m.get("role") == "assistant")


def index_folder(datanet_id: int) -> Path:
    return Path(settings.INDEX_ROOT) / str(int(datanet_id))


def sync_index(datanet_id: int, batch: int = 256) -> IndexState | None:
    """Embed newly accepted records, drop ones no longer accepted, save a new generation."""
    from attribution.engine.index import DatanetIndex, default_embedder

    datanet = Datanet.objects.filter(pk=datanet_id).first()
    if datanet is None:  # deleted since the sync was queued
        shutil.rmtree(index_folder(datanet_id), ignore_errors=True)
        return None
    folder = index_folder(datanet_id)
    with DatanetIndex.writer(folder, datanet_id) as index:  # one writer per Datanet across processes
        present = index.texts()
        rows = Contribution.objects.filter(datanet=datanet, status=Contribution.Status.ACCEPTED)
        accepted = {pk: record_text(datanet.schema, content) for pk, content in rows.values_list("pk", "content")}
        stale = sorted(present.keys() - accepted.keys())
        # new ids, and ids whose text differs (a restored database can reuse ids)
        new = sorted(pk for pk, text in accepted.items() if present.get(pk) != text)
        if stale:
            index.remove(stale)
        for start in range(0, len(new), batch):
            ids = new[start : start + batch]
            texts = [accepted[i] for i in ids]
            index.upsert(ids, texts, default_embedder().encode(texts))
        generation = index.save() if (stale or new or not index.generation) else index.generation
    state, _ = IndexState.objects.update_or_create(
        datanet=datanet, defaults={"generation": generation, "records": len(accepted), "last_error": ""}
    )
    log.info("index of datanet %s: +%d −%d, generation %s", datanet_id, len(new), len(stale), generation)
    return state


def schedule_sync(datanet_id: int) -> None:
    enqueue_task("attribution.sync_index", datanet_id)
