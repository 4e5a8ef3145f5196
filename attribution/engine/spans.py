"""Span matching between an answer and training records, infini-gram style.

Words are lowercase `\\w+` runs (punctuation and case ignored), each kept with
its character offsets in the original text. Every run of n consecutive words
in a record is hashed (64-bit, over word ids) into one sorted array of
(hash, position). An answer is matched by hashing its own n-grams, looking each
up with a binary search, and extending every hit forward, vectorised over all
hits of that n-gram, to a maximal span. A hit whose previous words also match
lies inside a span found from an earlier answer position, so it is skipped:
each maximal span is found once, from its left end. Hash collisions cost time,
never wrong spans: extension compares the word ids themselves.

Why not a suffix array (what infini-gram uses): a suffix array answers matches
of any length, but we only report spans of >= n words, which the n-gram table
finds with one lookup per answer position. The table is built in linear time
with numpy (a suffix array is O(N log N) and needs random access over the whole
corpus while sorting), is 16 bytes per word position, and loads from one .npz
without pickle. What we give up: spans shorter than n words are never seen.

Plain Python + numpy; never imports Django.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORD = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier for the polynomial n-gram hash
FORMAT = 1


@dataclass
class Span:
    answer_start: int  # char offsets in the answer
    answer_end: int
    record_start: int  # char offsets in the record text
    record_end: int
    words: int


def words(text: str) -> tuple[list[str], np.ndarray]:
    """Normalised words and their (start, end) char offsets, (W, 2)."""
    found = list(WORD.finditer(text))
    offsets = np.array([m.span() for m in found], dtype=np.int64).reshape(-1, 2)
    return [m.group().lower() for m in found], offsets


def _hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """Hash of ids[p : p + n] for every p with a full window, (len(ids) - n + 1,) uint64."""
    count = len(ids) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrap-around mod 2**64 is the point
        for k in range(n):
            h = h * _MULT + (ids[k : k + count].astype(np.uint64) + np.uint64(1))
    return h


class SpanIndex:
    """An n-gram index over record texts; one text per record id."""

    def __init__(self, n: int = 4):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        self.vocab: dict[str, int] = {}
        self.record_ids = np.zeros(0, dtype=np.int64)  # (R,)
        self.doc_ptr = np.zeros(1, dtype=np.int64)  # (R + 1,): record r owns word positions [ptr[r], ptr[r+1])
        self.tokens = np.zeros(0, dtype=np.int32)  # (N,) word ids, all records concatenated
        self.offsets = np.zeros((0, 2), dtype=np.int64)  # (N, 2) char offsets in the record's text
        self.gram_hash = np.zeros(0, dtype=np.uint64)  # (G,) sorted
        self.gram_pos = np.zeros(0, dtype=np.int64)  # (G,) word position where each n-gram starts

    @classmethod
    def build(cls, records: Iterable[tuple[int, str]], n: int = 4) -> SpanIndex:
        index = cls(n)
        ids, tokens, offsets, ptr = [], [], [], [0]
        for cid, text in records:
            found, spans = words(text)
            tokens.append(np.array([index.vocab.setdefault(w, len(index.vocab)) for w in found], dtype=np.int32))
            offsets.append(spans)
            ids.append(cid)
            ptr.append(ptr[-1] + len(found))
        if len(set(ids)) != len(ids):
            raise ValueError("record ids must be unique: join a record's fields into one text")
        index.record_ids = np.array(ids, dtype=np.int64)
        index.doc_ptr = np.array(ptr, dtype=np.int64)
        index.tokens = np.concatenate(tokens) if tokens else index.tokens
        index.offsets = np.concatenate(offsets) if offsets else index.offsets
        grams = [(_hashes(t, n), np.arange(len(t) - n + 1, dtype=np.int64) + start)
                 for t, start in zip(tokens, ptr, strict=False) if len(t) >= n]  # fmt: skip
        if grams:
            hashes = np.concatenate([g[0] for g in grams])
            order = np.argsort(hashes, kind="stable")
            index.gram_hash, index.gram_pos = hashes[order], np.concatenate([g[1] for g in grams])[order]
        return index

    def save(self, path: str | Path) -> None:
        """One .npz of plain arrays (the vocabulary as a unicode array): loads without pickle."""
        vocab = sorted(self.vocab, key=self.vocab.get)
        with open(path, "wb") as f:  # a file object: savez would append ".npz" to a bare path
            np.savez_compressed(
                f, format=np.array([FORMAT, self.n]), vocab=np.array(vocab, dtype=str), record_ids=self.record_ids,
                doc_ptr=self.doc_ptr, tokens=self.tokens, offsets=self.offsets, gram_hash=self.gram_hash,
                gram_pos=self.gram_pos,
            )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> SpanIndex:
        with np.load(path, allow_pickle=False) as f:
            version, n = (int(x) for x in f["format"])
            if version != FORMAT:
                raise ValueError(f"span index format {version} is not {FORMAT}")
            index = cls(n)
            index.vocab = {w: i for i, w in enumerate(f["vocab"].tolist())}
            for name in ("record_ids", "doc_ptr", "tokens", "offsets", "gram_hash", "gram_pos"):
                setattr(index, name, f[name])
        return index

    def __len__(self) -> int:
        return len(self.record_ids)

    def match(self, answer: str, min_words: int | None = None) -> dict[int, list[Span]]:
        """Maximal spans of >= max(min_words, n) words shared with each record, by record id.

        Spans whose answer range lies inside another span of the same record are dropped.
        """
        need = max(min_words or self.n, self.n)  # shorter spans are invisible to an n-gram table
        found, a_off = words(answer)
        a = np.array([self.vocab.get(w, -1) for w in found], dtype=np.int64)  # -1: never in any record
        hits: dict[int, list[Span]] = {}
        for i, h in enumerate(_hashes(a, self.n)):
            if (a[i : i + self.n] < 0).any():
                continue
            lo, hi = np.searchsorted(self.gram_hash, h, side="left"), np.searchsorted(self.gram_hash, h, side="right")
            if lo == hi:
                continue
            for g, length in zip(*self._extend(a, i, self.gram_pos[lo:hi]), strict=True):
                if length >= need:
                    self._add(hits, a_off, i, int(g), int(length))
        return {cid: _outermost(spans) for cid, spans in hits.items()}

    def _extend(self, a: np.ndarray, i: int, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Left-maximal hits among `starts` and the length each extends to (vectorised)."""
        doc = np.searchsorted(self.doc_ptr, starts, side="right") - 1  # (H,) record index per hit
        begin, end = self.doc_ptr[doc], self.doc_ptr[doc + 1]
        # Skip a hit if the word before it matches too: a span from an earlier answer position covers it.
        left_max = np.ones(len(starts), dtype=bool)
        if i > 0:
            left_max = ~((starts > begin) & (self.tokens[np.maximum(starts - 1, 0)] == a[i - 1]))
        starts, end = starts[left_max], end[left_max]
        length = np.full(len(starts), self.n, dtype=np.int64)
        alive = np.ones(len(starts), dtype=bool)
        # Hash collisions: confirm the n-gram itself before extending.
        for k in range(self.n):
            alive &= self.tokens[starts + k] == a[i + k]
        length[~alive] = 0
        while alive.any():
            k = length
            alive &= (i + k < len(a)) & (starts + k < end)
            alive[alive] &= self.tokens[(starts + k)[alive]] == a[i + k[alive]]
            length[alive] += 1
        return starts, length

    def _add(self, hits: dict, a_off: np.ndarray, i: int, g: int, length: int) -> None:
        r = int(np.searchsorted(self.doc_ptr, g, side="right") - 1)
        span = Span(
            answer_start=int(a_off[i, 0]), answer_end=int(a_off[i + length - 1, 1]),
            record_start=int(self.offsets[g, 0]), record_end=int(self.offsets[g + length - 1, 1]), words=length,
        )  # fmt: skip
        hits.setdefault(int(self.record_ids[r]), []).append(span)


def _outermost(spans: list[Span]) -> list[Span]:
    """Spans sorted by answer position, without those whose answer range another one contains."""
    spans = sorted(spans, key=lambda s: (s.answer_start, -s.answer_end, s.record_start))
    kept: list[Span] = []
    for s in spans:
        if not any(k.answer_start <= s.answer_start and s.answer_end <= k.answer_end for k in kept):
            kept.append(s)
    return kept


def span_scores(matches: dict[int, list[Span]], answer: str) -> dict[int, float]:
    """Share of the answer's words inside that record's spans (0..1), per record id."""
    _, offsets = words(answer)
    if not len(offsets):
        return {}
    starts = offsets[:, 0]  # (W,)
    scores = {}
    for cid, spans in matches.items():
        covered = np.zeros(len(starts), dtype=bool)
        for s in spans:
            covered |= (starts >= s.answer_start) & (starts < s.answer_end)
        scores[cid] = float(covered.mean())
    return scores
