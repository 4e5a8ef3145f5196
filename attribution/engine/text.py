"""Words for retrieval: BM25 tokenisation and the citation excerpts built from the same words.

Tokenisation: ``bm25s.tokenize`` (lower-case, ``\\b\\w\\w+\\b``, bm25s's English stop-words) plus a light
S-stemmer (plural endings only, Harman 1991) for the corpus; queries go through ``tokenize()``, the same rules
without bm25s's per-call overhead; ``highlight()`` uses them too, so highlighted spans are the words BM25
matched. No PyStemmer dependency.

Plain Python; bm25s (for its stop-word list) is imported on first use.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Sequence

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token pattern
_SPACE = re.compile(r"\s")
_GAP = re.compile(r"[\s\-\u2010-\u2014'\u2019]*")  # between two matched words: merge their spans


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
    (lower-case, its token pattern and stop-words, plurals folded), without its per-call overhead, which
    matters per query."""
    stop = _stopwords()
    return [[stem(w) for w in _TOKEN.findall(text.lower()) if w not in stop] for text in texts]


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
