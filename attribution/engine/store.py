"""One Datanet's index on disk and in memory: usearch HNSW vectors + a bm25s BM25 index + the texts.

Retrieval: for a query, an index takes the top ``candidates`` documents by BM25 and the top ``candidates`` by
HNSW (usearch, cosine, float16 graph: it only proposes candidates). For the union of both lists it computes

- the *exact* cosine with the query from the float32 vectors kept in memory (``vectors.npy`` on disk), and
- the *exact* raw BM25 score (bm25s scores every document for the query terms anyway, so a dense-only
  candidate gets its true BM25 score too, usually 0),

and hands them to ``fuse`` (attribution/engine/fuse.py).

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
load a generation fully into memory (usearch ``restore(view=False)``, numpy and bm25s without mmap), so a reader
holding generation n keeps working after its files are deleted; ``open()`` retries if a generation vanishes
between reading ``CURRENT`` and reading its files.

Writers: ``save()`` takes an exclusive ``flock`` on ``<folder>/.lock`` and refuses (``StaleIndexError``) if
another writer saved since this object was opened, so updates are never silently lost. To serialise whole
read-modify-write cycles between processes, use ``with DatanetIndex.writer(folder) as index: ...;
index.save()``: it holds the lock from opening the latest generation until the block ends.

Costs (bench/retrieval.py measures them): bm25s cannot update incrementally, so the BM25 index is rebuilt from
all texts on ``save()`` (or lazily on the first search after an upsert/remove, or by ``refresh()``), in time
proportional to the whole Datanet, paid on every save however small the change. usearch adds and removes
incrementally (removals leave tombstones). Memory: ~1.5 KB float32 + ~0.9 KB HNSW per record, plus BM25
postings and the texts.

bm25s (pulls scipy) and usearch are imported inside the methods that need them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from attribution.engine.embed import DIM, _unit
from attribution.engine.fuse import CANDIDATES, DENSE_WEIGHT, Candidates, Hit, _no_candidates, _top_positive, fuse
from attribution.engine.text import _stem_words, tokenize

HNSW_CONNECTIVITY = 16
HNSW_EXPANSION_ADD = 128
HNSW_EXPANSION_SEARCH = 64


class StaleIndexError(RuntimeError):
    """Another writer saved a newer generation since this index was opened."""


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
