"""The hybrid retrieval engine (attribution/engine/index.py, retrieve.py): plain Python, no database."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from attribution.engine import retrieve
from attribution.engine.index import DIM, DatanetIndex, Embedder, StaleIndexError, default_embedder
from attribution.engine.text import _stem_words

ROOT = Path(__file__).resolve().parent.parent.parent

DOCS = {
    1: "The cat sat quietly on the warm windowsill all afternoon.",
    2: "Quarterly revenue grew by twelve percent thanks to strong exports.",
    3: "Reduce the learning rate when the validation loss stops improving.",
    4: "The recipe calls for two cups of flour and a pinch of salt.",
    5: "Our database backups run every night at three o'clock.",
    6: "Run kappa9173 diverged after the optimiser state was restored from a checkpoint.",
    7: "Der Übersetzer prüft die Fassade: 数据 und façade, naïve café ✓.",
}


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return default_embedder()


@pytest.fixture(scope="session")
def doc_vectors(embedder) -> dict[int, np.ndarray]:
    return dict(zip(DOCS, embedder.encode(list(DOCS.values())), strict=True))


def build(folder: Path, vectors: dict[int, np.ndarray], ids: list[int] | None = None) -> DatanetIndex:
    ids = list(DOCS) if ids is None else ids
    index = DatanetIndex.open(folder)
    index.upsert(ids, [DOCS[i] for i in ids], np.stack([vectors[i] for i in ids]))
    index.save()
    return index


def random_vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ask(index: DatanetIndex, embedder, query: str, k: int = 3) -> list[retrieve.Hit]:
    return index.search(query, embedder.encode([query])[0], k=k)


def test_it_loads_no_torch_on_import():
    """Importing the index stays light: torch and the embedding model load on first use.
    (No Django at all is tests/test_architecture.py::test_plain_python_runs_without_django_loaded.)"""
    code = (
        "import sys; import attribution.engine.index, attribution.engine.retrieve; "
        "bad = [m for m in ('torch', 'sentence_transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_it_embeds_normalised_float32(embedder):
    v = embedder.encode(["hello", "world"])
    assert v.shape == (2, DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert embedder.encode([]).shape == (0, DIM)


def test_it_finds_a_record_by_meaning_with_no_shared_words(tmp_path, embedder, doc_vectors):
    index = build(tmp_path, doc_vectors)
    query = "kitten resting beside a sunny pane"
    assert not set(retrieve.tokenize([query])[0]) & set(retrieve.tokenize([DOCS[1]])[0])
    hits = ask(index, embedder, query)
    assert hits[0].id == 1 and hits[0].bm25 == 0 and hits[0].dense > 0.3
    assert all(0 <= h.score <= 1 for h in hits)


def test_it_finds_a_rare_exact_term_by_bm25(tmp_path, embedder, doc_vectors):
    index = build(tmp_path, doc_vectors)
    hits = ask(index, embedder, "what happened with kappa9173?")
    assert hits[0].id == 6 and hits[0].bm25 > 0
    assert all(h.bm25 == 0 for h in hits[1:])


def test_it_folds_plurals_and_skips_stop_words_like_bm25s():
    import bm25s

    assert retrieve.tokenize(["The adapters and the matrices"]) == [["adapter", "matrice"]]
    assert retrieve.tokenize(["adapter matrice"]) == [["adapter", "matrice"]]
    texts = [*DOCS.values(), "", "  ", "A I", "Ünïcødé STUDIES of LoRA's 2e-4 rates"]
    expected = bm25s.tokenize(texts, stopwords="en", stemmer=_stem_words, return_ids=False)
    assert retrieve.tokenize(texts) == expected  # the fast query path matches how the corpus was indexed


def test_it_scores_with_the_exact_vectors_after_removals_and_replacements(tmp_path):
    vectors = random_vectors(40, seed=1)
    index = DatanetIndex.open(tmp_path)
    index.upsert(list(range(30)), [f"doc {i}" for i in range(30)], vectors[:30])
    index.remove(list(range(0, 30, 3)))  # frees rows that the next upsert reuses
    index.upsert(
        [*range(30, 40), 1],
        [f"doc {i}" for i in range(30, 40)] + ["doc one again"],
        vectors[30:40].tolist() + [vectors[0]],
    )
    index.save()
    expected = {i: vectors[i] for i in range(30, 40)} | {i: vectors[i] for i in range(30) if i % 3} | {1: vectors[0]}
    for reopened in (index, DatanetIndex.open(tmp_path)):
        hits = reopened.search("doc", vectors[5], k=100)
        assert {h.id for h in hits} == set(expected)
        for h in hits:
            assert h.dense == pytest.approx(float(expected[h.id] @ vectors[5]), abs=1e-5)


def test_it_survives_a_restart_and_never_returns_removed_records(tmp_path, embedder, doc_vectors):
    index = build(tmp_path, doc_vectors)
    assert index.generation == 1 and len(index) == len(DOCS)
    index.remove([3])
    index.upsert([5], ["Nightly snapshots of the database are taken at 3 am."], embedder.encode(["nightly snapshots"]))
    assert index.save() == 2

    reopened = DatanetIndex.open(tmp_path)  # a "restart": everything comes from disk
    assert reopened.generation == 2 and len(reopened) == len(DOCS) - 1
    for query in (DOCS[3], "learning rate validation loss", "reduce"):
        hits = ask(reopened, embedder, query, k=50)
        assert 3 not in [h.id for h in hits]
    top = ask(reopened, embedder, "snapshots")[0]
    assert top.id == 5 and top.text.startswith("Nightly")
    assert "backups" not in {w for h in ask(reopened, embedder, "backups", k=50) for w in h.text.split()}


def test_it_handles_empty_index_short_index_blank_and_non_ascii_queries(tmp_path, embedder, doc_vectors):
    empty = DatanetIndex.open(tmp_path / "missing")
    assert len(empty) == 0 and empty.generation == 0
    assert ask(empty, embedder, "anything") == []
    index = build(tmp_path / "idx", doc_vectors, ids=[1, 7])
    assert len(ask(index, embedder, "cat", k=100)) == 2  # k larger than the index
    assert index.search("   ", embedder.encode(["x"])[0]) == [] and index.search("", None) == []
    assert ask(index, embedder, "数据 façade")[0].id == 7
    assert ask(index, embedder, "??? !!!")  # no BM25 term at all: dense still answers
    assert index.search("cat", None)[0].id == 1  # no query vector: BM25 only


def test_it_rejects_mismatched_upserts(tmp_path):
    index = DatanetIndex.open(tmp_path)
    with pytest.raises(ValueError):
        index.upsert([1, 2], ["a"], random_vectors(2))
    with pytest.raises(ValueError):
        index.upsert([-1], ["a"], random_vectors(1))
    index.upsert([], [], np.zeros((0, DIM), dtype=np.float32))
    index.upsert([4, 4], ["first", "second"], random_vectors(2))  # the last occurrence wins
    assert len(index) == 1 and index.search("second", None)[0].text == "second"


def test_it_keeps_an_old_reader_working_and_prunes_old_generations(tmp_path):
    writer = DatanetIndex.open(tmp_path)
    writer.upsert([1, 2], ["alpha beta", "gamma delta"], random_vectors(2))
    writer.save()
    reader = DatanetIndex.open(tmp_path)
    for n in range(3, 5):
        writer.upsert([n], [f"epsilon {n}"], random_vectors(1, seed=n))
        writer.save()
    assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-2", "gen-3"]
    assert (tmp_path / "CURRENT").read_text().strip() == "3"
    assert [h.id for h in reader.search("alpha", random_vectors(1)[0])][:1] == [1]  # generation 1 is gone from disk


def test_it_refuses_a_stale_save_and_serialises_writers(tmp_path):
    first, second = DatanetIndex.open(tmp_path), DatanetIndex.open(tmp_path)
    first.upsert([1], ["one"], random_vectors(1))
    first.save()
    second.upsert([2], ["two"], random_vectors(1))
    with pytest.raises(StaleIndexError):
        second.save()

    def add(start: int) -> None:
        for i in range(start, start + 8):
            with DatanetIndex.writer(tmp_path) as index:
                index.upsert([i], [f"record {i}"], random_vectors(1, seed=i))
                index.save()

    threads = [threading.Thread(target=add, args=(s,)) for s in (100, 200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = DatanetIndex.open(tmp_path)
    assert len(final) == 17 and final.generation == 17


def test_it_reloads_the_cache_when_the_generation_changes(tmp_path, doc_vectors):
    retrieve.clear_cache()
    build(tmp_path, doc_vectors, ids=[1, 2])
    cached = retrieve.load(tmp_path)
    assert retrieve.load(tmp_path) is cached and len(cached) == 2
    with DatanetIndex.writer(tmp_path) as index:
        index.upsert([4], [DOCS[4]], doc_vectors[4][None])
        index.save()
    fresh = retrieve.load(tmp_path)
    assert fresh is not cached and fresh.generation == 2 and len(fresh) == 3
    assert retrieve.load(tmp_path) is fresh


def test_it_merges_hits_across_datanets(tmp_path, embedder, doc_vectors):
    a = build(tmp_path / "a", doc_vectors, ids=[1, 2, 3])
    b = build(tmp_path / "b", doc_vectors, ids=[4, 5, 6])
    query = "baking bread with flour and a feline on the sill"
    hits = retrieve.search({10: a, 20: b}, query, embedder.encode([query])[0], k=6)
    assert len(hits) == 6 and {(h.datanet, h.id) for h in hits[:2]} == {(10, 1), (20, 4)}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {h.datanet for h in hits} == {10, 20} and all(h.datanet == 10 for h in hits if h.id in (1, 2, 3))


def test_it_highlights_matched_words():
    text = "Low-rank adapters freeze the base model; LoRA trains low rank matrices."
    spans = retrieve.highlight(text, "Which LoRA adapter rank is low?")
    assert [text[a:b] for a, b in spans] == ["Low-rank adapters", "LoRA", "low rank"]
    assert retrieve.highlight(text, "the a of") == []
    assert retrieve.highlight("Ärger über Façade", "façade ÄRGER") == [(0, 5), (11, 17)]


def test_it_cuts_an_excerpt_around_the_densest_match():
    text = "lorem " * 100 + "the LoRA adapter has rank eight " + "ipsum " * 100 + "one lonely lora"
    spans = retrieve.highlight(text, "lora adapter rank")
    out, shifted = retrieve.excerpt(text, spans, width=120)
    assert out.startswith("…") and out.endswith("…") and len(out) <= 122
    assert [out[a:b] for a, b in shifted] == ["LoRA adapter", "rank"]
    short, same = retrieve.excerpt("LoRA rank", [(0, 4), (5, 9)])
    assert short == "LoRA rank" and same == [(0, 4), (5, 9)]
    lines = "\n".join(f"line{i} has filler" for i in range(40))
    text = lines + "\nthe LoRA adapter\n" + lines
    out, shifted = retrieve.excerpt(text, retrieve.highlight(text, "lora adapters"), width=77)
    body = out.strip("…")
    at = text.find(body)
    assert at > 0 and text[at - 1].isspace() and text[at + len(body)].isspace()  # cut between words
    assert [out[a:b] for a, b in shifted] == ["LoRA adapter"]
    head, none = retrieve.excerpt("word " * 100, [], width=50)
    assert head.startswith("word") and head.endswith("…") and none == []
