"""Retrieval benchmark: the hybrid engine (attribution/engine/index.py, retrieve.py) against exact search, same run.

For each corpus size (default 10k and 100k records) it builds one DatanetIndex and times queries end to end
(embed the query with MiniLM + BM25 + HNSW + exact cosine of the candidates + fusion), with a breakdown, and
the baseline measured in the same run: brute-force exact search (full BM25 score vector + numpy cosine over
every vector + the same fusion over every document). Goal: p95 <= 30 ms at 100k.

Quality: recall@10 of the engine's fused top-10 against that exact fused top-10, and recall@10 of the HNSW
dense top-10 against exact brute-force dense top-10.

Corpus: demo Datanet records (datanets/demo_data.py) recombined with extra glossary sentences and, for a tenth
of them, a rare run code; `--real` of them are embedded with MiniLM for real. Larger sizes are filled with
"mixture" records: the text of two real records joined, with the normalised sum of their two real vectors
(embedding 100k texts on 2 CPU cores would take 6+ minutes; the bench says how many records are mixtures).
Queries are embedded for real: questions about glossary terms, bags of words from a record, and run codes.

Usage: .venv/bin/python bench/retrieval.py [--sizes 10000,100000] [--queries 200] [--real 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attribution.engine import retrieve  # noqa: E402
from attribution.engine.index import DatanetIndex, Embedder  # noqa: E402
from datanets.demo_data import GLOSSARY, demo_records  # noqa: E402

QUESTIONS = ["how does {} work in practice", "why would someone use {}", "{} explained simply", "problems with {}"]


def run_code(rng: np.random.Generator) -> str:
    letters = "bcdfghjklmnpqrstvwxz"
    return "".join(rng.choice(list(letters), 3)) + str(rng.integers(1000, 9999))


def real_texts(n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """n distinct record texts and the run codes used in them."""
    records = demo_records()
    sentences = [r["output"] for r in records] + [f"{t}: {d}; for example {e}." for t, d, e in GLOSSARY]
    texts: dict[str, None] = {}  # ordered and distinct
    codes: list[str] = []
    while len(texts) < n:
        r = records[rng.integers(len(records))]
        parts = [r["instruction"], r["input"], r["output"]]
        parts += [sentences[i] for i in rng.choice(len(sentences), rng.integers(0, 3), replace=False)]
        if rng.random() < 0.1:
            codes.append(run_code(rng))
            parts.append(f"Seen in run {codes[-1]}.")
        texts[" ".join(p for p in parts if p)] = None
    return list(texts), codes


def embed_within(embedder, texts: list[str], seconds: float) -> np.ndarray:
    """Embed texts in order until done or `seconds` are spent (a busy machine gets fewer real records)."""
    out, start = [], time.perf_counter()
    for i in range(0, len(texts), 256):
        out.append(embedder.encode(texts[i : i + 256]))
        if time.perf_counter() - start > seconds:
            break
    return np.vstack(out)


def corpus(size: int, texts: list[str], vectors: np.ndarray, rng: np.random.Generator):
    """`size` records: the real ones first, then mixtures of two real ones."""
    n_real = min(size, len(texts))
    out_texts, out_vecs = list(texts[:n_real]), [vectors[:n_real]]
    pairs = set()
    while len(pairs) < size - n_real:
        a, b = rng.integers(len(texts), size=2)
        if a != b:
            pairs.add((int(a), int(b)))
    if pairs:
        a, b = np.array(sorted(pairs)).T
        mixed = vectors[a] + vectors[b]
        out_vecs.append(mixed / np.linalg.norm(mixed, axis=1, keepdims=True))
        out_texts += [texts[i] + " " + texts[j] for i, j in zip(a, b, strict=True)]
    return out_texts, np.vstack(out_vecs).astype(np.float32), size - n_real


def make_queries(n: int, texts: list[str], codes: list[str], rng: np.random.Generator) -> list[str]:
    queries = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            queries.append(QUESTIONS[rng.integers(len(QUESTIONS))].format(GLOSSARY[rng.integers(len(GLOSSARY))][0]))
        elif kind == 1:
            words = [w for w in texts[rng.integers(len(texts))].split() if len(w) > 3]
            queries.append(" ".join(rng.choice(words, min(4, len(words)), replace=False)))
        else:
            queries.append(f"what went wrong in run {codes[rng.integers(len(codes))]}")
    return queries


def exact_search(index: DatanetIndex, ids: np.ndarray, matrix: np.ndarray, query: str, q: np.ndarray, k: int):
    """The same fusion over every document: full BM25 vector + brute-force cosine. Returns (ids, timings)."""
    t0 = time.perf_counter()
    bm25_ids, bm25 = index.bm25_scores(query)
    t1 = time.perf_counter()
    cos = matrix @ q
    t2 = time.perf_counter()
    lexical = bm25 / bm25.max() if len(bm25) and bm25.max() > 0 else 0.0
    score = retrieve.DENSE_WEIGHT * np.clip(cos, 0, 1) + (1 - retrieve.DENSE_WEIGHT) * lexical
    top = np.argpartition(-score, k)[:k]
    top = top[np.argsort(-score[top])]
    t3 = time.perf_counter()
    assert not len(bm25_ids) or np.array_equal(bm25_ids, ids)  # BM25 rows are in upsert order
    return ids[top].tolist(), {"bm25": t1 - t0, "dense": t2 - t1, "fuse": t3 - t2}


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


def measure(index, ids, matrix, queries, embedder, k: int, candidates: int) -> dict:
    """Per-query latencies (seconds) of both paths and recall figures."""
    rows = {"engine": [], "exact": [], "embed": [], "parts": [], "exact_parts": []}
    recall, dense_recall = [], []
    for query in queries[:5]:  # warm up caches and lazy imports
        index.search(query, embedder.encode([query])[0], k=k, candidates=candidates)
    for query in queries:
        t0 = time.perf_counter()
        q = embedder.encode([query])[0]
        t1 = time.perf_counter()
        parts: dict[str, float] = {}
        hits = index.search(query, q, k=k, candidates=candidates, timings=parts)
        t2 = time.perf_counter()
        exact, exact_parts = exact_search(index, ids, matrix, query, q, k)
        rows["embed"].append(t1 - t0)
        rows["engine"].append(t2 - t0)
        rows["exact"].append(t1 - t0 + sum(exact_parts.values()))
        rows["parts"].append(parts)
        rows["exact_parts"].append(exact_parts)
        recall.append(len({h.id for h in hits} & set(exact)) / len(exact))
        true_dense = ids[np.argpartition(-(matrix @ q), k)[:k]]
        dense_recall.append(len(set(index.dense_ids(q, candidates)[:k]) & set(true_dense.tolist())) / k)
    rows["recall"], rows["dense_recall"] = statistics.mean(recall), statistics.mean(dense_recall)
    return rows


def breakdown(parts: list[dict]) -> str:
    keys = ["bm25", "dense", "gather", "fuse"]
    return " ".join(f"{key} {statistics.mean(p.get(key, 0) for p in parts) * 1000:5.2f}" for key in keys)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--real", type=int, default=10000, help="records embedded for real, at most")
    parser.add_argument("--embed-seconds", type=float, default=90, help="stop embedding real records after this")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=retrieve.CANDIDATES)
    parser.add_argument("--torch-threads", type=int, default=1, help="0 = torch's default (all cores)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    # One intra-op thread: on 2 shared cores a single short query is 2-3x faster than with two spinning threads.
    embedder = Embedder(threads=args.torch_threads or None)
    load_before = os.getloadavg()[0]

    texts, codes = real_texts(min(args.real, max(sizes)), rng)
    embedder.encode(["warm up"])
    start = time.perf_counter()
    vectors = embed_within(embedder, texts, args.embed_seconds)
    embed_s = time.perf_counter() - start
    n_real = len(vectors)
    texts = texts[:n_real]
    joined = "\n".join(texts)
    codes = [c for c in codes if c in joined]  # only codes of records that were embedded
    queries = make_queries(args.queries, texts, codes, rng)
    print(f"embedded {n_real} real records in {embed_s:.1f} s ({n_real / embed_s:.0f}/s; --real {args.real}, "
          f"--embed-seconds {args.embed_seconds}); {args.queries} queries "
          f"(a third each: glossary questions, bags of record words, rare run codes); k={args.k}, "
          f"candidates={args.candidates} per retriever; dense weight {retrieve.DENSE_WEIGHT}; "
          f"torch threads {embedder.threads or 'default'}")  # fmt: skip

    results = {}
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix="mf-retrieval-"))
        size_texts, matrix, mixtures = corpus(size, texts, vectors, rng)
        ids = np.arange(size, dtype=np.int64) * 7 + 3  # not 0..n-1, so id/row mix-ups would show
        index = DatanetIndex.open(work)
        t0 = time.perf_counter()
        index.upsert(ids.tolist(), size_texts, matrix)
        t1 = time.perf_counter()
        index.refresh()
        t2 = time.perf_counter()
        index.save()
        t3 = time.perf_counter()
        index = retrieve.load(work)
        t4 = time.perf_counter()
        disk = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
        print(f"\n{size} records ({mixtures} mixtures of two real ones): upsert (HNSW add) {t1 - t0:.1f} s "
              f"({(t1 - t0) / size * 1000:.2f} ms/record), "
              f"BM25 rebuild {t2 - t1:.1f} s, save (write + fsync) {t3 - t2:.1f} s, load {t4 - t3:.2f} s, "
              f"{disk / 1e6:.0f} MB on disk")  # fmt: skip
        results[size] = measure(index, ids, matrix, queries, embedder, args.k, args.candidates)
        report(results[size])
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nload average before {load_before:.2f}, after {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    size = max(sizes)
    p95 = pct(results[size]["engine"], 0.95)
    print(f"goal: end-to-end p95 <= 30 ms at {size}: {p95:.1f} ms, {'met' if p95 <= 30 else 'NOT met'}")


def report(r: dict) -> None:
    engine, exact, embed = r["engine"], r["exact"], r["embed"]
    rows = {
        "engine end to end": (engine, f"embed {statistics.mean(embed) * 1000:5.2f} {breakdown(r['parts'])}"),
        "exact brute force end to end": (
            exact,
            f"embed {statistics.mean(embed) * 1000:5.2f} {breakdown(r['exact_parts'])}",
        ),
        "engine search only (no embed)": ([e - m for e, m in zip(engine, embed, strict=True)], ""),
        "exact search only (no embed)": ([e - m for e, m in zip(exact, embed, strict=True)], ""),
    }
    print(f"  {'path':32s} {'p50 ms':>8s} {'p95 ms':>8s} {'mean ms':>8s}  mean breakdown ms")
    for name, (values, parts) in rows.items():
        print(
            f"  {name:32s} {pct(values, 0.5):8.2f} {pct(values, 0.95):8.2f} {statistics.mean(values) * 1000:8.2f}  {parts}"
        )
    search, exact_search = rows["engine search only (no embed)"][0], rows["exact search only (no embed)"][0]
    print(f"  ratio engine/exact: end to end p50 {pct(engine, 0.5) / pct(exact, 0.5):.2f}, search only p50 "
          f"{pct(search, 0.5) / pct(exact_search, 0.5):.2f}, p95 {pct(search, 0.95) / pct(exact_search, 0.95):.2f}")  # fmt: skip
    print(f"  recall@10 fused (engine vs exact fusion over all docs): {r['recall']:.3f}; "
          f"HNSW dense top-10 vs brute-force dense top-10: {r['dense_recall']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
