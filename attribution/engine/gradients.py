"""Gradients of answer-token losses w.r.t. a LoRA adapter, and the CountSketch that compresses them.

Per-example gradients come from torch.func (vmap over `grad` of a
functional_call) over right-padded mini-batches: with a causal model and right
padding no real token attends to a pad, so no attention mask is needed and the
gradients equal the unpadded ones. A plain per-example loop is the fallback
(``_choose_mode``).

Plain Python + torch + peft (imported inside the functions); never imports Django.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

from training.engine import data as data_mod

MODES = ("auto", "vmap", "loop")


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
