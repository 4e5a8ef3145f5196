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

Plain Python + torch + peft; never imports Django.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.engine import data as data_mod

METHOD = "tracin-lora"
METHOD_SELF = "tracin-lora-self"
COMPLETE = "COMPLETE"  # the training engine's marker in a fully written checkpoint
MODES = ("auto", "vmap", "loop")


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


# --------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    name: str
    path: Path
    lr: float


def _logged_lrs(state_file: Path) -> list[tuple[int, float]]:
    if not state_file.exists():
        return []
    history = json.loads(state_file.read_text()).get("log_history", [])
    return [(int(h["step"]), float(h["learning_rate"])) for h in history if "learning_rate" in h and "step" in h]


def _step(path: Path) -> int:
    return int(path.name.split("-")[1])


def select_checkpoints(run_dir: str | Path, max_checkpoints: int) -> tuple[list[Checkpoint], list[str]]:
    """Evenly spaced complete checkpoints plus the final adapter (always last), and notes.

    lr per checkpoint: the learning rate logged nearest its step (trainer_state.json);
    the final adapter takes the last one logged. Without any log, 1.0 (said in notes).
    """
    run_dir = Path(run_dir)
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_model.safetensors").exists():
        raise FileNotFoundError(f"no final adapter in {adapter}")
    metrics = adapter / "metrics.json"
    final_step = json.loads(metrics.read_text()).get("steps") if metrics.exists() else None
    found = sorted((p for p in (run_dir / "checkpoints").glob("checkpoint-*") if (p / COMPLETE).exists()), key=_step)
    # A checkpoint at the final step holds the adapter's own weights: counting it twice would double its lr.
    found = [p for p in found if final_step is None or _step(p) < final_step]
    keep = max(max_checkpoints - 1, 0)
    if len(found) > keep:
        # Evenly spaced, always ending at the newest (linspace from the end: keep=1 gives the newest).
        picks = np.unique(np.linspace(len(found) - 1, 0, keep).round().astype(int)) if keep else []
        found = [found[i] for i in picks]
    newest_state = max((run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json"),
                       key=lambda f: _step(f.parent), default=None)  # fmt: skip
    last_logged = _logged_lrs(newest_state) if newest_state else []
    notes, chosen = [], []
    for path in found:
        logged = _logged_lrs(path / "trainer_state.json")
        lr = min(logged, key=lambda sl: abs(sl[0] - _step(path)))[1] if logged else None
        if lr is None:
            notes.append(f"{path.name}: no learning rate logged; used 1.0")
        chosen.append(Checkpoint(path.name, path, 1.0 if lr is None else lr))
    if not last_logged:
        notes.append("adapter: no learning rate logged; used 1.0")
    chosen.append(Checkpoint("adapter", adapter, last_logged[-1][1] if last_logged else 1.0))
    return chosen, notes


# --------------------------------------------------------------------------- CountSketch


def _tensor_seed(seed: int, name: str) -> int:
    """A stable per-tensor seed (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:7], "big")


class CountSketch:
    """A CountSketch projection R^P -> R^dim: coordinate j goes to bucket h(j) with sign s(j).

    Why not a dense Gaussian projection: LoRA on a 7B model has tens of millions
    of parameters; a P x 1024 float matrix would need ~160 GB. CountSketch keeps
    one bucket index and one sign per coordinate (5 bytes each, O(P)), drawn per
    parameter tensor from torch.Generator(seed of (sketch_seed, tensor name)), so
    both sides of the system rebuild the same projection independently.
    E[<Sx, Sy>] = <x, y>; the error shrinks like |x| |y| / sqrt(dim).
    """

    def __init__(self, sizes: list[tuple[str, int]], dim: int, seed: int, device=None):
        import torch

        self.dim, self.seed = dim, seed
        self.buckets, self.signs = [], []
        for name, numel in sizes:
            gen = torch.Generator().manual_seed(_tensor_seed(seed, name))  # CPU draws: same on any device
            bucket = torch.randint(0, dim, (numel,), generator=gen, dtype=torch.int64)
            sign = torch.randint(0, 2, (numel,), generator=gen, dtype=torch.int8) * 2 - 1
            self.buckets.append(bucket.to(device=device, dtype=torch.int32))
            self.signs.append(sign.to(device=device))

    def project(self, chunks: list):
        """chunks[k]: (B, numel_k) in the order of `sizes` -> (B, dim)."""
        import torch

        out = torch.zeros(chunks[0].shape[0], self.dim, dtype=chunks[0].dtype, device=chunks[0].device)
        for chunk, bucket, sign in zip(chunks, self.buckets, self.signs, strict=True):
            out.index_add_(1, bucket, chunk * sign.to(chunk.dtype))  # (B, numel_k) summed into (B, dim)
        return out


# --------------------------------------------------------------------------- model and gradients


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_peft(base_model: str, adapter_dir: str | Path, attn: str = "sdpa"):
    """(tokenizer, PeftModel in eval mode with trainable adapter params), float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32, attn_implementation=attn)
    model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)
    return tokenizer, model.to(_device()).eval()  # eval: LoRA dropout off, gradients deterministic


def adapter_params(model) -> dict:
    """name -> parameter, the adapter's trainable tensors, in a fixed (sorted) order."""
    return dict(sorted((n, p) for n, p in model.named_parameters() if p.requires_grad))


def load_adapter_weights(model, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    if result.unexpected_keys:
        raise ValueError(f"{folder.name} does not match the adapter: {result.unexpected_keys[:3]}")


def _example_losses(logits, labels):
    """Mean answer-token loss per row. logits (B, T, V), labels (B, T) -> (B,)."""
    import torch

    targets = labels[:, 1:]  # (B, T-1): token t+1 predicted at t
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), targets, ignore_index=data_mod.IGNORE, reduction="none"
    )  # (B, T-1)
    return nll.sum(1) / (targets != data_mod.IGNORE).sum(1).clamp(min=1)


def _pad(examples: list, pad_id: int, device):
    """Right-padded (ids, labels), each (B, T_max); pads carry label IGNORE."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in examples]
    labels = [e.labels + [data_mod.IGNORE] * (width - len(e.labels)) for e in examples]
    return torch.tensor(ids, device=device), torch.tensor(labels, device=device)


def _grads_vmap(model, params: dict, ids, labels) -> list:
    """Per-example gradients, [(B, numel_k)] per adapter tensor, from one vmapped pass."""
    from torch.func import functional_call, grad, vmap

    def loss_one(p, row_ids, row_labels):  # row_ids, row_labels: (T,)
        out = functional_call(model, p, args=(), kwargs={"input_ids": row_ids[None], "use_cache": False})
        return _example_losses(out.logits, row_labels[None])[0]

    frozen = {n: t.detach() for n, t in params.items()}
    with warnings.catch_warnings():
        # functorch runs fused SDPA per example (no batching rule): slower than eager attention
        # on paper, but measured the same on the tiny model, and it never holds B x T x T scores.
        warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
        per = vmap(grad(loss_one), in_dims=(None, 0, 0))(frozen, ids, labels)  # name -> (B, *shape)
    return [per[n].reshape(ids.shape[0], -1) for n in params]


def _grads_loop(model, params: dict, ids, labels) -> list:
    """Per-example gradients one example at a time (unpadded), same layout as _grads_vmap."""
    import torch

    rows = []
    for row_ids, row_labels in zip(ids, labels, strict=True):
        n = int((row_labels != data_mod.IGNORE).nonzero().max()) + 1  # drop the right padding
        logits = model(input_ids=row_ids[None, :n], use_cache=False).logits
        loss = _example_losses(logits, row_labels[None, :n])[0]
        rows.append([g.reshape(-1) for g in torch.autograd.grad(loss, list(params.values()))])
    return [torch.stack(parts) for parts in zip(*rows, strict=True)]


def per_example_grads(model, params: dict, ids, labels, mode: str) -> list:
    return (_grads_vmap if mode == "vmap" else _grads_loop)(model, params, ids, labels)


def mean_grad(model, params: dict, examples: list, pad_id: int, batch_size: int, tick: Callable) -> list:
    """Gradient of the mean per-example loss, [(numel_k,)]; batched, no per-example split needed."""
    import torch

    total = [torch.zeros(p.numel(), device=p.device) for p in params.values()]
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        ids, labels = _pad(batch, pad_id, total[0].device)
        loss = _example_losses(model(input_ids=ids, use_cache=False).logits, labels).sum() / len(examples)
        for acc, g in zip(total, torch.autograd.grad(loss, list(params.values())), strict=True):
            acc += g.reshape(-1)
        tick(len(batch))
    return total


def _choose_mode(mode: str, model, params: dict, probe: list, pad_id: int) -> tuple[str, str | None]:
    """'vmap' when it runs on this model (checked on a tiny batch), else 'loop'; and a note on fallback."""
    if mode not in MODES:
        raise ValueError(f"per_sample must be one of {MODES}")
    if mode != "auto":
        return mode, None
    try:
        ids, labels = _pad(probe, pad_id, next(iter(params.values())).device)
        _grads_vmap(model, params, ids, labels)
        return "vmap", None
    except Exception as exc:  # functorch refuses some ops (data-dependent control flow, custom kernels)
        return "loop", f"vmap per-example gradients failed ({type(exc).__name__}: {exc}); used a loop"


# --------------------------------------------------------------------------- training side


class _Progress:
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
    import torch

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
    tick = _Progress(len(checkpoints) * (len(train) + len(target_set)), on_progress, should_cancel)
    scores = {cid: 0.0 for cid, _ in train}
    sketches: dict[int, np.ndarray] = {}
    for ckpt in checkpoints:
        load_adapter_weights(model, ckpt.path)
        target = mean_grad(model, params, [e for _, e in target_set], pad_id, batch_size, tick)  # [(numel_k,)]
        final = ckpt is checkpoints[-1]
        for batch in _by_length(train, batch_size):
            ids, labels = _pad([e for _, e in batch], pad_id, target[0].device)
            grads = per_example_grads(model, params, ids, labels, mode)  # [(B, numel_k)]
            dots = sum(g @ t for g, t in zip(grads, target, strict=True))  # (B,)
            sketch = sketcher.project(grads).cpu().numpy() if final else None  # (B, dim)
            for row, (cid, _) in enumerate(batch):
                scores[cid] += ckpt.lr * float(dots[row])
                if final:  # repeated ids add up: the sketch is linear
                    sketches[cid] = sketches.get(cid, 0) + sketch[row]
            tick(len(batch))
        del target
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
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
        run_config = Path(adapter_dir) / "run_config.json"
        max_len = json.loads(run_config.read_text()).get("max_seq_len", 2048) if run_config.exists() else 2048
        entry = {"tokenizer": tokenizer, "model": model, "max_len": max_len, "sketchers": {}, "lock": threading.Lock()}
        _loaded[key] = entry
        while len(_loaded) > _CACHE_SIZE:
            _loaded.popitem(last=False)
        return entry


class AnswerScorer:
    """Gradient sketches of served answers, comparable with TrainingInfluence.sketches.

    Loads base + final adapter once: instances share a small LRU cache keyed by
    (base, adapter_dir), so building one per request is cheap.
    """

    def __init__(self, base_model: str, adapter_dir: str | Path, sketch_dim: int, sketch_seed: int):
        self.entry = _loaded_adapter(base_model, adapter_dir)
        self.sketch_dim, self.sketch_seed = sketch_dim, sketch_seed

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
        keep = self.entry["max_len"]
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
