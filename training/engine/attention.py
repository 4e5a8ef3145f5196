"""Attention over packed rows, each example on its own, with no padding and no mask (`sdpa_varlen`).

The padding-free collator lays a batch's examples end to end in one row, positions restarting at 0 for
each. Stock sdpa sees one long sequence and needs a block-diagonal mask over the whole row: its cost
grows with the square of the batch's total tokens, and the mask itself is (tokens × tokens). Here the
row is cut where the positions restart and each example runs through causal sdpa alone, so attention
costs the sum of each example's length squared (what a padded batch pays for its real tokens) and
nothing is computed for padding or across examples: the varlen idea of flash-attention, on any device
and in any precision. On CUDA with flash-attention installed, its own varlen kernel does the same in
one call (`flash_attention_2`); this is the path everywhere else.

Registered with transformers' AttentionInterface under NAME; a model loaded with
attn_implementation=NAME gets no mask from transformers (the name has no mask function), so a call
with a mask, or with positions transformers made itself (one row for a padded batch of several), falls
back to stock sdpa.
"""

from __future__ import annotations

import functools
import weakref

from . import precision

NAME = "sdpa_varlen"
_last: tuple = (None, None)  # (weak reference to the position_ids tensor, its segments): one per forward


def segments(position_ids) -> list[list[tuple[int, int]]]:
    """Per row, the [start, end) spans of its examples: a span starts where the position is 0."""
    global _last
    ref, spans = _last
    if ref is not None and ref() is position_ids:
        return spans  # every layer of one forward sees the same tensor: cut it once
    spans = []
    for row in position_ids.tolist():
        starts = [i for i, p in enumerate(row) if p == 0] or [0]
        spans.append(list(zip(starts, [*starts[1:], len(row)], strict=True)))
    _last = (weakref.ref(position_ids), spans)
    return spans


def varlen_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                is_causal=None, position_ids=None, **kwargs):  # fmt: skip
    """(B, H, T, D) query/key/value → (B, T, H, D), each example of each row attending to itself only."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (attention_mask is not None or position_ids is None or position_ids.shape[0] != query.shape[0]
            or query.shape[2] != key.shape[2]):  # fmt: skip
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, position_ids=position_ids, **kwargs)  # fmt: skip
    gqa = query.shape[1] != key.shape[1]  # grouped-query attention: sdpa shares each key/value head, no copies
    rows = []
    for b, spans in enumerate(segments(position_ids)):
        lengths = [e - s for s, e in spans]
        # split, not slices: the backward of a split is one concatenation, where each slice's backward
        # would write its gradient into a zero tensor the size of the whole row
        parts = zip(*(x[b : b + 1].split(lengths, dim=2) for x in (query, key, value)), strict=True)
        outs = [_causal(q, k, v, dropout, scaling, gqa) for q, k, v in parts]
        rows.append(outs[0] if len(outs) == 1 else torch.cat(outs, dim=2))
    out = rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)
    return out.transpose(1, 2).contiguous(), None


ROUND = 32  # reduced-precision CPU attention: example lengths rounded up to a multiple of this


def _causal(q, k, v, dropout: float, scaling, gqa: bool):
    """Causal attention of one example: stock sdpa in fp32 and on CUDA. 16-bit on CPU, two changes:
    - Few shapes. torch's CPU flash kernel builds (JIT) and keeps matrix kernels for each new length it
      sees in 16 bits, never freed: 400 examples of random lengths up to 512 grew a process by ~1.6 GB,
      and ran slower (building them). So the example is padded at the end to a multiple of ROUND with
      zeros and the output cut back: causal, no real position attends to a later one, and the padded
      rows' outputs are dropped, so values and gradients are the unpadded ones (test).
    - Forward in 16 bits, backward in fp32 (_flash16). At head dim 32 the kernel's bf16 backward is much
      slower than its fp32 one (measured, 8 x 512 tokens, 8 heads, forward + backward: stock bf16 ~81 ms,
      fp32 ~63, bf16 forward with fp32 backward ~55); its bf16 forward is the fastest of the three.
      Attention dropout (0 in the usual configs) keeps stock sdpa.
    The same 400 examples then grew it by ~11 MB, in 2.05 s against stock bf16's 7.16 s."""
    import torch.nn.functional as F

    length, flash16 = q.shape[2], _flash16()
    if not precision.per_shape_kernels(q.device.type, q.dtype):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=length > 1,
                                             enable_gqa=gqa)  # fmt: skip
    pad = -length % ROUND
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    if dropout or flash16 is None:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa)
    else:  # the kernel shares each key/value head among its query heads itself (grouped-query attention)
        out = flash16.apply(q, k, v, scaling)
    return out[:, :, :length] if pad else out


@functools.cache
def _flash16():
    """An autograd function over torch's CPU flash-attention ops: causal attention, forward in the inputs'
    16-bit dtype, backward in fp32 (the forward's log-sum-exp is fp32 already; q, k, v, its output and the
    incoming gradient are widened for it), the gradients handed back in the inputs' dtype. None where this
    torch lacks the ops (they are private; pinned torch has them)."""
    import torch

    ops = [getattr(torch.ops.aten, f"_scaled_dot_product_flash_attention_for_cpu{s}", None) for s in ("", "_backward")]
    if None in ops:
        return None
    forward_op, backward_op = ops

    class Flash16(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, scale):
            out, lse = forward_op(q, k, v, 0.0, True, scale=scale)
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.scale = scale
            return out

        @staticmethod
        def backward(ctx, grad):
            q, k, v, out, lse = ctx.saved_tensors
            dq, dk, dv = backward_op(*(x.float() for x in (grad, q, k, v, out)), lse, 0.0, True, scale=ctx.scale)
            return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None

    return Flash16


def register() -> str:
    """Make NAME a transformers attention implementation (idempotent); the name. torch.compile leaves it
    eager (its loop over examples of varying lengths would recompile at every new batch)."""
    import torch
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, torch.compiler.disable(varlen_sdpa))
    return NAME


def implementation(packing: bool, cuda: bool) -> str:
    """The attention to load a model with for training: flash-attention's varlen kernel on CUDA where it
    is installed, else NAME for padding-free batches, else stock sdpa (padded batches carry a mask)."""
    if not packing:
        return "sdpa"
    if cuda:
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
    return register()


def keeps_apart(model) -> bool:
    """Whether `model` with its attention keeps two packed examples apart: the logits of [a, b] in one row
    (positions restarting at b) equal those of a and b run alone. An architecture whose attention does not
    see the positions fails it; the caller then goes back to stock sdpa and its block-diagonal mask."""
    import torch

    vocab = model.get_input_embeddings().weight.shape[0]
    device = next(model.parameters()).device
    a = torch.arange(3, 10, device=device) % vocab
    b = torch.arange(11, 16, device=device) % vocab
    ids = torch.cat([a, b])[None]
    positions = torch.cat([torch.arange(len(a)), torch.arange(len(b))]).to(device)[None]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            together = model(input_ids=ids, position_ids=positions, use_cache=False).logits[0].float()
            alone = torch.cat([model(input_ids=x[None], use_cache=False).logits[0] for x in (a, b)]).float()
    finally:
        model.train(was_training)
    scale = alone.abs().max().clamp(min=1.0)
    return bool(((together - alone).abs().max() / scale) < 2e-2)
