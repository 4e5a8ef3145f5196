"""The training loss on answer tokens only, in chunks (FinetuneConfig.answer_only_head).

A causal LM's forward computes logits for every position, (tokens × vocabulary) floats, and the loss
then ignores every position whose label is -100 (prompts, padding, boundaries); backward then runs the
output layer's product again for every position. Here the model runs as wrapped (so several processes'
gradients are averaged by DistributedDataParallel as usual) asked for the logits of no position
(`logits_to_keep`), the decoder's output is kept, the hidden states of the positions whose next token
is an answer token are gathered, and the output layer plus
cross-entropy run on them in chunks of CHUNK rows, each chunk's gradient computed in the same pass
(softmax − one-hot, times the output weight), as Liger-Kernel's fused linear cross-entropy does on GPUs:
at most one chunk's logits exist at a time, none is recomputed, and backward only scales the gradients
kept (tokens × hidden). The saving grows with the vocabulary (150k for current models) and with the
share of prompt tokens. The value and the gradients are the standard loss's (test).
"""

from __future__ import annotations

import functools

from . import precision

CHUNK = 1024
ALIGN = 64  # chunk sizes: CHUNK, then a multiple of ALIGN, then under ALIGN (few distinct GEMM shapes)
IGNORE = -100


def spans(n: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) chunks covering n rows: full chunks, then the rest as a multiple of ALIGN rows and
    what is left. The answer tokens of a batch vary with every step; oneDNN (bf16 on CPU) builds and keeps
    a kernel for every new row count, so the chunk sizes come from a small set instead (≤ chunk ÷ ALIGN +
    ALIGN of them), not one per count; there the rows under ALIGN are padded to ALIGN with zero rows
    (HeadLoss), so those ≤ ALIGN − 1 sizes are one."""
    cuts = list(range(0, n - n % chunk, chunk))
    rest = n - n % chunk
    if n % chunk >= ALIGN and n % ALIGN:
        cuts.append(rest)
        rest = n - n % ALIGN
    cuts.append(rest)
    bounds = [*cuts, n]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _unwrapped(model):
    """The causal LM inside DistributedDataParallel and PEFT wrappers."""
    inner = model.module if hasattr(model, "module") else model
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


def supported(model) -> bool:
    """Models whose logits are exactly the output layer (a plain nn.Linear, not a quantised subclass)
    applied to the decoder's last hidden state, and whose forward takes `logits_to_keep` (transformers'
    causal LMs): the forward runs through the model as wrapped, so DistributedDataParallel averages the
    gradients of several processes as usual, and computes no logits itself."""
    import inspect

    import torch

    causal = _unwrapped(model)
    config = causal.config
    plain = not any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
    return (
        plain
        and hasattr(causal, "get_decoder")
        and type(causal.get_output_embeddings()) is torch.nn.Linear
        and "logits_to_keep" in inspect.signature(causal.forward).parameters
    )


@functools.cache
def _head_loss():
    """The autograd function (built on first use: this module imports without torch)."""
    import torch
    import torch.nn.functional as F

    class HeadLoss(torch.autograd.Function):
        """Σ cross-entropy(h @ weight.T + bias, targets), the gradients worked out chunk by chunk here."""

        @staticmethod
        def forward(ctx, h, weight, bias, targets, chunk: int):
            want_h, want_w, want_b = ctx.needs_input_grad[:3]
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            grad_h = torch.empty_like(h) if want_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if want_w else None
            grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=h.device) if want_b else None
            few_shapes = precision.per_shape_kernels(h.device.type, weight.dtype)
            for start, end in spans(targets.numel(), chunk):
                rows, ys = end - start, targets[start:end]
                hs = h[start:end]
                if few_shapes and rows < ALIGN:  # the last few rows padded with zero rows: one shape, not 63
                    hs = F.pad(hs, (0, 0, 0, ALIGN - rows))
                log_p = torch.log_softmax(F.linear(hs, weight, bias).float(), dim=-1)  # one fused pass
                total -= log_p[:rows].gather(1, ys[:, None]).sum()
                g = log_p.exp_()  # softmax: d loss / d logits = softmax − one-hot
                g[rows:] = 0  # the padding rows give no gradient
                g[torch.arange(rows, device=g.device), ys] -= 1
                g = g.to(weight.dtype)
                if want_h:
                    grad_h[start:end] = (g @ weight)[:rows]
                if want_w:
                    grad_w.addmm_(g.t().float(), hs.float())
                if want_b:
                    grad_b += g.float().sum(0)
            ctx.save_for_backward(grad_h, grad_w, grad_b)
            ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
            return total

        @staticmethod
        def backward(ctx, grad):
            grad_h, grad_w, grad_b = ctx.saved_tensors
            w_dtype, b_dtype = ctx.dtypes
            return (
                grad_h * grad.to(grad_h.dtype) if grad_h is not None else None,
                (grad_w * grad).to(w_dtype) if grad_w is not None else None,
                (grad_b * grad).to(b_dtype) if grad_b is not None else None,
                None,
                None,
            )

    return HeadLoss


def answer_loss(model, inputs: dict, num_items_in_batch=None, chunk: int = CHUNK):
    """Mean cross-entropy over answer tokens (or their sum ÷ num_items_in_batch, as transformers does
    under gradient accumulation)."""
    import torch
    import torch.nn.functional as F

    causal = _unwrapped(model)
    body, head = causal.get_decoder(), causal.get_output_embeddings()
    labels = inputs["labels"]
    seen = []
    hook = body.register_forward_hook(lambda module, args, out: seen.append(out.last_hidden_state))
    try:  # the whole model, as wrapped, asked for the logits of no position: the decoder's output is kept
        model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
              position_ids=inputs.get("position_ids"), use_cache=False,
              logits_to_keep=torch.empty(0, dtype=torch.long, device=inputs["input_ids"].device))  # fmt: skip
    finally:
        hook.remove()
    hidden = seen[-1][:, :-1]
    targets = labels[:, 1:].to(hidden.device)
    keep = targets != IGNORE
    hidden, targets = hidden[keep], targets[keep]  # (N, H), (N,)
    if torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad):
        total = _head_loss().apply(hidden, head.weight, head.bias, targets, chunk)
    else:  # no gradients wanted (evaluation)
        total = sum((F.cross_entropy(head(hidden[a:b]).float(), targets[a:b], reduction="sum")
                     for a, b in spans(targets.numel(), chunk)), hidden.new_zeros((), dtype=torch.float32))  # fmt: skip
    if num_items_in_batch is not None:
        return total / num_items_in_batch
    return total / max(targets.numel(), 1)


def trainer_class(base, enabled: bool):
    """`base` (transformers' Trainer) computing its training loss with answer_loss when `enabled`."""

    class EngineTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            known = self.__dict__.setdefault("_supported", {})  # per model object: checked once, not every step
            if model not in known:
                known[model] = supported(model)
            if not enabled or return_outputs or not known[model]:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = answer_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # as Trainer.compute_loss: the count is every process's tokens and DistributedDataParallel
                # averages the gradients, so each process's sum is scaled back up by the number of processes
                loss = loss * (self.accelerator.num_processes // self.get_tp_size() if self.args.n_gpu <= 1
                               else self.args.n_gpu)  # fmt: skip
            return loss

    return EngineTrainer
