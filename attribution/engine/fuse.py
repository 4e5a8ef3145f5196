"""Fusing BM25 and dense candidates into one ranked list of hits.

Fusion: convex combination ``score = w * clip(cos, 0, 1) + (1 - w) * bm25 / max_bm25`` with
``w = DENSE_WEIGHT = 0.6``, where ``max_bm25`` is the best raw BM25 score in the candidate pool. Why this and not
reciprocal rank fusion (RRF): RRF throws away score magnitudes, so its output says nothing about *how*
relevant a hit is (the best hit always looks perfect), whereas the cosine kept on an absolute scale lets
callers threshold citations ("nothing relevant found"); Bruch, Gai & Ingber (2023, "An Analysis of Fusion
Functions for Hybrid Retrieval") also found convex combination at least as good as RRF and easier to tune.
BM25 is unbounded, so it is max-normalised; the global BM25 maximum is always among the BM25 candidates, so
the candidate path normalises exactly as a search over all documents would. The best possible score is 1
(cosine 1 and the top BM25 score). When several Datanets are searched, candidates from all of them are pooled
with their raw scores and fused once, so all hits share one normalisation. Caveat: raw BM25 uses each index's
own IDF / average length, so cross-Datanet BM25 is comparable only roughly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DENSE_WEIGHT = 0.6  # weight of the cosine in the fusion; BM25 gets the rest
CANDIDATES = 100  # per retriever, per index


@dataclass
class Hit:
    id: int  # contribution id
    datanet: int  # datanet id (the index's key, passed in by the caller)
    score: float  # fused score in [0, 1]; 1 = best possible
    bm25: float  # raw BM25 score (exact for every candidate; 0 when no query term occurs)
    dense: float  # exact cosine similarity
    text: str  # the indexed text


@dataclass
class Candidates:
    """One index's unfused candidates for a query, as arrays (Hits are only built for the fused top-k)."""

    ids: np.ndarray  # int64
    bm25: np.ndarray  # raw BM25, exact
    dense: np.ndarray  # cosine, exact
    datanet: int
    texts: dict[int, str]  # the index's id -> text (shared, not copied)

    def __len__(self) -> int:
        return len(self.ids)


def _no_candidates(datanet: int) -> Candidates:
    return Candidates(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.float32), datanet, {})


def _top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n best positive scores (unordered: fusion sorts)."""
    if n < len(scores):
        top = np.argpartition(-scores, n - 1)[:n]
    else:
        top = np.arange(len(scores))
    return top[scores[top] > 0]


def fuse(
    pools: Sequence[Candidates],
    k: int = 10,
    dense_weight: float = DENSE_WEIGHT,
    timings: dict[str, float] | None = None,
) -> list[Hit]:
    """Convex combination of clipped cosine and BM25 normalised by the best BM25 of all pools; top-k."""
    start = time.perf_counter()
    pools = [p for p in pools if len(p)]
    if not pools or k <= 0:
        return []
    bm25 = np.concatenate([p.bm25 for p in pools]).astype(np.float64)
    dense = np.concatenate([p.dense for p in pools]).astype(np.float64)
    ids = np.concatenate([p.ids for p in pools])
    datanets = np.concatenate([np.full(len(p), p.datanet, dtype=np.int64) for p in pools])
    pool_of = np.repeat(np.arange(len(pools)), [len(p) for p in pools])
    top = bm25.max()
    lexical = bm25 / top if top > 0 else np.zeros_like(bm25)
    score = np.clip(dense_weight * np.clip(dense, 0, 1) + (1 - dense_weight) * lexical, 0, 1)
    order = np.lexsort((ids, datanets, -score))[:k]  # ties: lower datanet, then lower id
    hits = [
        Hit(
            int(ids[j]),
            int(datanets[j]),
            float(score[j]),
            float(bm25[j]),
            float(dense[j]),
            pools[pool_of[j]].texts[int(ids[j])],
        )
        for j in order
    ]
    if timings is not None:
        timings["fuse"] = timings.get("fuse", 0.0) + time.perf_counter() - start
    return hits
