"""The retrieval worker: a thread in `python -m serving.worker` (which already holds
torch and the embedding model) answering queries from web processes, which never
import torch. Queries name the Datanets to search; the web side decides which ones
the viewer may read before asking (attribution.retrieval)."""

from __future__ import annotations

import json
import logging
import threading
import time

from attribution.indexing import index_folder
from attribution.retrieval import LINE
from core import rpc

log = logging.getLogger(__name__)
MAX_K = 50


def answer(request: dict) -> dict:
    from attribution.engine import retrieve

    query = str(request.get("query", ""))[:4000]
    k = max(1, min(int(request.get("k", 5)), MAX_K))
    indexes = {}
    for datanet_id in request.get("datanets", []):
        folder = index_folder(int(datanet_id))
        if (folder / "CURRENT").exists():
            indexes[int(datanet_id)] = retrieve.load(folder)
    if not indexes or not query.strip():
        return {"hits": []}
    started = time.perf_counter()
    vector = retrieve.default_embedder().encode([query])[0]
    hits = retrieve.search(indexes, query, vector, k=k)
    return {
        "hits": [{"id": h.id, "datanet": h.datanet, "score": h.score, "bm25": h.bm25, "dense": h.dense} for h in hits],
        "ms": round((time.perf_counter() - started) * 1000, 2),
    }


def serve(conn, stopping: threading.Event) -> None:
    while not stopping.is_set():
        item = conn.brpop(LINE.requests, timeout=1)
        if item is None:
            continue
        try:
            request = json.loads(item[1])
        except ValueError:
            continue  # not ours: nobody waits for a reply
        try:
            reply = answer(request)
        except Exception as exc:  # a bad request or a broken index: the caller gets a message
            log.exception("retrieval failed")
            reply = {"error": f"Retrieval failed: {exc}"}
        if isinstance(request, dict) and request.get("id"):
            rpc.reply(conn, LINE, str(request["id"]), reply)


def start(conn) -> threading.Event:
    stopping = threading.Event()
    threading.Thread(target=serve, args=(conn, stopping), name="retrieval", daemon=True).start()
    return stopping
