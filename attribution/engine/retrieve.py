"""Query time of hybrid retrieval over Datanet records: BM25 (bm25s) + dense MiniLM vectors (usearch HNSW), fused.

The entry point for everything that answers queries: ``load()`` a Datanet's saved index (cached per folder),
embed the query (``default_embedder()``), ``search()`` one or several indexes, and cut citation excerpts
(``highlight()``, ``excerpt()``). Building and saving indexes goes through attribution/engine/index.py.

Where the parts live: tokenisation and excerpts in text.py, embeddings in embed.py, one Datanet's index (files,
generations, locking, candidates) in store.py, fusion of the candidates into ``Hit``s in fuse.py.

Plain Python: never imports Django, Celery or Channels. torch / sentence-transformers, bm25s (pulls scipy) and
usearch are slow to import, so they are imported lazily inside functions and importing this module is cheap.
Objects returned by ``load()`` are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from attribution.engine.embed import DIM, Embedder, default_embedder
from attribution.engine.fuse import CANDIDATES, DENSE_WEIGHT, Candidates, Hit, fuse
from attribution.engine.store import DatanetIndex, read_generation
from attribution.engine.text import excerpt, highlight, stem, tokenize

__all__ = [
    "CACHE_SIZE",
    "CANDIDATES",
    "DENSE_WEIGHT",
    "DIM",
    "Candidates",
    "DatanetIndex",
    "Embedder",
    "Hit",
    "clear_cache",
    "default_embedder",
    "excerpt",
    "fuse",
    "highlight",
    "load",
    "read_generation",
    "search",
    "stem",
    "tokenize",
]

CACHE_SIZE = 64  # indexes kept by load()


def search(
    indexes: dict[int, DatanetIndex],
    query: str,
    vector: np.ndarray | None,
    k: int = 10,
    candidates: int = CANDIDATES,
    dense_weight: float = DENSE_WEIGHT,
) -> list[Hit]:
    """Fused top-k across several Datanets' indexes (keys are datanet ids)."""
    n = max(candidates, k)
    return fuse([index.candidates(query, vector, n, datanet=d) for d, index in indexes.items()], k, dense_weight)


# --- cached readers -----------------------------------------------------------------------------------------

_cache: OrderedDict[str, DatanetIndex] = OrderedDict()
_cache_lock = threading.Lock()


def load(folder: str | Path, datanet: int = 0) -> DatanetIndex:
    """Cached reader: the same object while `<folder>/CURRENT` is unchanged, a fresh one when it changed."""
    key = os.path.abspath(folder)
    generation = read_generation(folder)
    with _cache_lock:
        index = _cache.get(key)
        if index is not None and index.generation == generation:
            _cache.move_to_end(key)
            return index
    # opened outside the lock: a big index is slow to read and other folders must stay servable meanwhile
    index = DatanetIndex.open(folder, datanet)
    with _cache_lock:
        _cache[key] = index
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return index


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
