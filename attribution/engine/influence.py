"""Gradient-based Proof of Attribution over LoRA parameters.

Training side (`training_influence`): TracIn (Pruthi et al., 2020) restricted to
the adapter. For each saved checkpoint c and each training example z,

    score(z) = sum_c lr_c * <g_c(z), mean_{z' in eval} g_c(z')>

where g_c is the gradient of an example's answer-token loss w.r.t. the LoRA
parameters at checkpoint c. Positive = a step on z lowered the eval loss
(helpful). Without an eval set the target is the mean *training* gradient
("tracin-lora-self"): how much z pulled the training loss down with the rest.
The Trainer uses AdamW, not SGD, so this is the usual first-order TracIn
approximation, not an exact replay.

Answer side (`AnswerScorer`): the gradient of a served answer's loss at the
final adapter is compared, by cosine, with every training example's gradient at
that adapter. Both are compressed with the same CountSketch so that a Datanet
stores `sketch_dim` floats per contribution instead of the full gradient.

Per-example gradients come from torch.func (vmap over `grad` of a
functional_call) over right-padded mini-batches: with a causal model and right
padding no real token attends to a pad, so no attention mask is needed and the
gradients equal the unpadded ones. A plain per-example loop is the fallback.

Where the parts live: the gradient machinery (CountSketch, per-example and mean
gradients, loading the adapter) in gradients.py, which checkpoints are replayed
with which learning rate in checkpoints.py.

Plain Python + torch + peft; never imports Django.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attribution.engine.checkpoints import COMPLETE, Checkpoint, select_checkpoints
from attribution.engine.gradients import (
    MODES,
    CountSketch,
    _choose_mode,
    _device,
    _example_losses,
    _pad,
    adapter_params,
    load_adapter_weights,
    load_peft,
    mean_grad,
    per_example_grads,
)
from training.engine import data as data_mod

__all__ = [
    "COMPLETE",
    "METHOD",
    "METHOD_SELF",
    "MODES",
    "AnswerScorer",
    "Checkpoint",
    "CountSketch",
    "InfluenceCancelled",
    "TrainingInfluence",
    "adapter_params",
    "combine",
    "gradient_scores",
    "load_adapter_weights",
    "load_peft",
    "select_checkpoints",
    "split_records",
    "training_influence",
]

METHOD = "tracin-lora"
METHOD_SELF = "tracin-lora-self"


class InfluenceCancelled(RuntimeError):
    """should_cancel() said stop; nothing was returned."""


@dataclass
class TrainingInfluence:
    method: str  # METHOD or METHOD_SELF
    checkpoints: list[str]  # e.g. ["checkpoint-10", "checkpoint-20", "adapter"]
    scores: dict[int, float]  # contribution id -> TracIn influence (positive = helpful)
    eval_ids: list[int]  # contributions in the eval split (not scored)
    sketches: dict[int, list[float]]  # contribution id -> CountSketch of its gradient at the final adapter
    sketch_dim: int
    sketch_seed: int
    seconds: float
    learning_rates: list[float] = field(default_factory=list)  # one per entry of `checkpoints`
    dropped_ids: list[int] = field(default_factory=list)  # records with nothing trainable (encode() -> None)
    per_sample: str = ""  # "vmap" or "loop": how per-example gradients were taken
    notes: list[str] = field(default_factory=list)  # fallbacks taken, in words


# --------------------------------------------------------------------------- split


def split_records(tokenizer, schema: str, records: Iterable[tuple[int, dict]], max_seq_len: int,
                  eval_fraction: float, seed: int):  # fmt: skip
    """(train, eval, dropped_ids), train/eval as [(id, Example)], exactly as data.build splits.

    data.build shuffles the list of surviving examples with random.Random(seed);
    the permutation depends only on the list's length and the seed, so shuffling
    (id, example) pairs the same way reproduces its split without touching it.
    """
    pairs, dropped = [], []
    for cid, record in records:
        example = data_mod.encode(tokenizer, schema, record, max_seq_len)
        if example is None:
            dropped.append(cid)
        else:
            pairs.append((cid, example))
    random.Random(seed).shuffle(pairs)
    n_eval = 0
    if eval_fraction > 0 and len(pairs) >= 4:
        n_eval = max(1, round(len(pairs) * eval_fraction))
    return pairs[n_eval:], pairs[:n_eval], dropped


# --------------------------------------------------------------------------- training side


class ProgressTicker:
    """Counts examples done across all checkpoints: reports the fraction and stops the run when cancelled."""

    def __init__(self, total: int, on_progress, should_cancel):
        self.total, self.done = max(total, 1), 0
        self.on_progress, self.should_cancel = on_progress, should_cancel

    def __call__(self, n: int) -> None:
        self.done += n
        if self.should_cancel and self.should_cancel():
            raise InfluenceCancelled("influence computation cancelled")
        if self.on_progress:
            self.on_progress(min(self.done / self.total, 1.0))


def _by_length(pairs: list, batch_size: int) -> list[list]:
    """Batches of similar length so padding stays small."""
    ordered = sorted(pairs, key=lambda pair: len(pair[1].input_ids))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


@dataclass
class _GradientPass:
    """What every checkpoint's pass shares: the model, its adapter tensors and how to batch examples."""

    model: Any
    params: dict
    pad_id: int
    mode: str  # "vmap" or "loop"
    batch_size: int
    tick: ProgressTicker


def _add_checkpoint(
    run: _GradientPass,
    ckpt: Checkpoint,
    train: list,
    target_set: list,
    scores: dict[int, float],
    sketcher: CountSketch | None,
    sketches: dict[int, np.ndarray],
) -> None:
    """Add checkpoint `ckpt`'s TracIn term to `scores`; with a sketcher (the final adapter) also sum each
    example's gradient sketch into `sketches`."""
    import torch

    load_adapter_weights(run.model, ckpt.path)
    examples = [e for _, e in target_set]
    target = mean_grad(run.model, run.params, examples, run.pad_id, run.batch_size, run.tick)  # [(numel_k,)]
    for batch in _by_length(train, run.batch_size):
        ids, labels = _pad([e for _, e in batch], run.pad_id, target[0].device)
        grads = per_example_grads(run.model, run.params, ids, labels, run.mode)  # [(B, numel_k)]
        dots = sum(g @ t for g, t in zip(grads, target, strict=True))  # (B,)
        sketch = sketcher.project(grads).cpu().numpy() if sketcher is not None else None  # (B, dim)
        for row, (cid, _) in enumerate(batch):
            scores[cid] += ckpt.lr * float(dots[row])
            if sketcher is not None:  # repeated ids add up: the sketch is linear
                sketches[cid] = sketches.get(cid, 0) + sketch[row]
        run.tick(len(batch))
    del target
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def training_influence(
    base_model: str,
    run_dir: str | Path,
    records: list[tuple[int, dict]],
    *,
    schema: str,
    max_seq_len: int,
    eval_fraction: float,
    seed: int,
    sketch_dim: int = 1024,
    sketch_seed: int = 0,
    max_checkpoints: int = 5,
    batch_size: int = 8,
    per_sample: str = "auto",
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainingInfluence:
    """TracIn scores of every training contribution and their gradient sketches at the final adapter.

    `records` are (contribution id, record) in the order the training job got them,
    with the job's schema, max_seq_len, eval_fraction and seed, so the split matches.
    per_sample: "auto" (vmap, loop if vmap fails), "vmap" or "loop".
    Raises InfluenceCancelled when should_cancel() returns true (checked per batch).
    """
    started = time.perf_counter()
    checkpoints, notes = select_checkpoints(run_dir, max_checkpoints)
    tokenizer, model = load_peft(base_model, checkpoints[-1].path)
    params = adapter_params(model)
    train, evals, dropped = split_records(tokenizer, schema, records, max_seq_len, eval_fraction, seed)
    target_set = evals or train  # no eval set: the target is the training loss itself
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    mode, note = _choose_mode(per_sample, model, params, [e for _, e in train[:2]], pad_id) if train else ("loop", None)
    notes += [note] if note else []
    sketcher = CountSketch([(n, p.numel()) for n, p in params.items()], sketch_dim, sketch_seed, _device())
    tick = ProgressTicker(len(checkpoints) * (len(train) + len(target_set)), on_progress, should_cancel)
    run = _GradientPass(model, params, pad_id, mode, batch_size, tick)
    scores = {cid: 0.0 for cid, _ in train}
    sketches: dict[int, np.ndarray] = {}
    for ckpt in checkpoints:
        final = ckpt is checkpoints[-1]
        _add_checkpoint(run, ckpt, train, target_set, scores, sketcher if final else None, sketches)
    return TrainingInfluence(
        method=METHOD if evals else METHOD_SELF,
        checkpoints=[c.name for c in checkpoints],
        scores=scores,
        eval_ids=[cid for cid, _ in evals],
        sketches={cid: s.astype(np.float32).tolist() for cid, s in sketches.items()},
        sketch_dim=sketch_dim,
        sketch_seed=sketch_seed,
        seconds=time.perf_counter() - started,
        learning_rates=[c.lr for c in checkpoints],
        dropped_ids=dropped,
        per_sample=mode,
        notes=notes,
    )


# --------------------------------------------------------------------------- answer side

_CACHE_SIZE = 2
_loaded: OrderedDict[tuple[str, str], dict] = OrderedDict()  # (base, adapter dir) -> model, tokenizer, sketchers
_cache_lock = threading.Lock()


def _loaded_adapter(base_model: str, adapter_dir: str | Path) -> dict:
    """The base + adapter loaded once per (base, adapter_dir); least recently used evicted."""
    key = (str(base_model), str(Path(adapter_dir).resolve()))
    with _cache_lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
        tokenizer, model = load_peft(base_model, adapter_dir)
        entry = {"tokenizer": tokenizer, "model": model, "sketchers": {}, "lock": threading.Lock()}
        _loaded[key] = entry
        while len(_loaded) > _CACHE_SIZE:
            _loaded.popitem(last=False)
        return entry


class AnswerScorer:
    """Gradient sketches of served answers, comparable with TrainingInfluence.sketches.

    Loads base + final adapter once: instances share a small LRU cache keyed by
    (base, adapter_dir), so building one per request is cheap.
    """

    def __init__(self, base_model: str, adapter_dir: str | Path, sketch_dim: int, sketch_seed: int, max_seq_len: int):
        """`max_seq_len` is the training config's: an answer is cut as its training examples were."""
        self.entry = _loaded_adapter(base_model, adapter_dir)
        self.sketch_dim, self.sketch_seed, self.max_seq_len = sketch_dim, sketch_seed, max_seq_len

    def _sketcher(self, params: dict) -> CountSketch:
        key = (self.sketch_dim, self.sketch_seed)
        if key not in self.entry["sketchers"]:
            sizes = [(n, p.numel()) for n, p in params.items()]
            self.entry["sketchers"][key] = CountSketch(sizes, self.sketch_dim, self.sketch_seed, _device())
        return self.entry["sketchers"][key]

    def example(self, messages: list[dict], answer: str) -> data_mod.Example:
        """Token ids and labels: loss on the answer (and its end-of-turn marker) only.

        The prompt is `messages` through the chat template with the generation prompt,
        as training.engine.data builds it; a prompt too long keeps its end, not the answer's.
        """
        tok = self.entry["tokenizer"]
        prompt = data_mod._template_ids(tok, messages, True)  # private, but exactly the template training used
        full = data_mod._template_ids(tok, [*messages, {"role": "assistant", "content": answer}], False)
        labels = [data_mod.IGNORE] * len(prompt) + full[len(prompt) :]
        keep = self.max_seq_len
        return data_mod.Example(full[-keep:], labels[-keep:])

    def sketch(self, messages: list[dict], answer: str) -> np.ndarray:
        """(sketch_dim,) float32: CountSketch of the answer-loss gradient w.r.t. the adapter at the final adapter."""
        import torch

        model = self.entry["model"]
        params = adapter_params(model)
        example = self.example(messages, answer)
        with self.entry["lock"]:  # one model, many request threads
            ids = torch.tensor([example.input_ids], device=_device())  # (1, T)
            labels = torch.tensor([example.labels], device=_device())  # (1, T)
            loss = _example_losses(model(input_ids=ids, use_cache=False).logits, labels)[0]
            grads = torch.autograd.grad(loss, list(params.values()))
            flat = [g.reshape(1, -1) for g in grads]  # [(1, numel_k)]
            return self._sketcher(params).project(flat)[0].cpu().numpy().astype(np.float32)


def gradient_scores(answer_sketch: np.ndarray, sketches: dict[int, list[float] | np.ndarray]) -> dict[int, float]:
    """Cosine similarity of the answer's sketch with each contribution's; 0 for a zero vector."""
    if not sketches:
        return {}
    ids = list(sketches)
    matrix = np.asarray([sketches[i] for i in ids], dtype=np.float32)  # (N, dim); one conversion, not N
    answer = np.asarray(answer_sketch, dtype=np.float32)  # (dim,)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(answer)  # (N,)
    cos = np.divide((matrix @ answer).astype(np.float64), norms, out=np.zeros(len(ids)), where=norms > 0)
    return {cid: float(c) for cid, c in zip(ids, np.clip(cos, -1.0, 1.0), strict=True)}


def combine(span: dict[int, float], grad: dict[int, float], span_weight: float = 0.5) -> dict[int, float]:
    """ "Influenced by" score in [0, 1] per contribution:

        score = span_weight * span + (1 - span_weight) * max(cosine, 0)

    span is the share of the answer's words copied from the contribution (0..1);
    a negative cosine means the contribution pulls the other way, which is not
    "influenced by", so it counts as 0. A contribution missing from one side
    counts 0 there; one missing from both is absent.
    """
    if not 0.0 <= span_weight <= 1.0:
        raise ValueError("span_weight must be in [0, 1]")
    out = {}
    for cid in span.keys() | grad.keys():
        value = span_weight * span.get(cid, 0.0) + (1 - span_weight) * max(grad.get(cid, 0.0), 0.0)
        out[cid] = min(max(value, 0.0), 1.0)
    return out
