"""A LoRA projection as one autograd function (FinetuneConfig.fused_lora).

PEFT computes a LoRA linear as `base(x) + lora_B(lora_A(dropout(x))) * scaling`: five autograd nodes,
the dropped copy of x kept for backward (the size of the layer's input, for each of the 7 projections of
a layer), and the scaling applied to the full (tokens × out) product. Here the same function is one
node: the scaling is applied to the rank-r hidden (tokens × r, r ≪ out), the LoRA product is added into
the base output in place (addmm), and backward keeps only x (which the base product needs anyway), the
dropped positions (dropout.py: 8p bytes an element) and the (tokens × r) hidden; the dropped x is rebuilt
from them.
Gradients flow to x, lora_A and lora_B; the frozen base weight gets none. The values and gradients are
PEFT's (test).

Used on CPU (not yet measured on GPUs), in fp32 or in bf16 mixed precision (a bf16 base, the adapter
in fp32: the products run in bf16, as under autocast, and the adapter's gradients come back in fp32),
for plain LoRA on an unmerged nn.Linear base whose weight is frozen, one adapter active, no LoRA bias,
no DoRA; any other case (quantised bases for QLoRA, adapters disabled for evaluation, mixed adapter
batches) runs PEFT's own forward.
"""

from __future__ import annotations

import functools
import types

from training.engine.dropout import draw, dropped_copy, zero


@functools.cache
def _function():
    """The autograd function (built on first use: this module imports without torch)."""
    import torch

    class LoraLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, p: float, fast: bool):
            # Everything in the base weight's dtype (bf16 under mixed precision: the adapter, kept in fp32
            # by PEFT, is cast for the products, as autocast would); gradients go back in each input's own.
            shape, dtype = x.shape, weight.dtype
            x2 = x.reshape(-1, shape[-1]).to(dtype)
            a, b = lora_a.to(dtype), lora_b.to(dtype)
            out = torch.nn.functional.linear(x2, weight, bias)
            dropped, keep_scale = draw(x2, p, fast) if p > 0 else (None, 1.0)
            xd = dropped_copy(x2, dropped) if dropped is not None else x2  # dropped, not rescaled
            scale = scaling * keep_scale  # both applied to the (N, r) hidden, not to (N, in) or (N, out)
            hidden = (xd @ a.t()).mul_(scale)
            out.addmm_(hidden, b.t())
            ctx.save_for_backward(x2, dropped, hidden, weight, a, b)
            ctx.scale, ctx.shape = scale, shape
            ctx.dtypes = (x.dtype, lora_a.dtype, lora_b.dtype)
            return out.view(*shape[:-1], out.shape[-1])

        @staticmethod
        def backward(ctx, grad):
            x2, dropped, hidden, weight, a, b = ctx.saved_tensors
            x_dtype, a_dtype, b_dtype = ctx.dtypes
            g = grad.reshape(-1, grad.shape[-1]).to(weight.dtype)
            grad_b = (g.t() @ hidden).to(b_dtype)  # (out, r)
            grad_pre = (g @ b).mul_(ctx.scale)  # (N, r): d loss / d (xd @ A.T)
            grad_a = (grad_pre.t() @ (dropped_copy(x2, dropped) if dropped is not None else x2)).to(a_dtype)
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_xd = grad_pre @ a
                if dropped is not None:
                    zero(grad_xd, dropped)
                grad_x = grad_xd.addmm_(g, weight).view(ctx.shape).to(x_dtype)
            return grad_x, None, None, grad_a, grad_b, None, None, None

    return LoraLinear


def _fusable(layer) -> bool:
    import torch

    base = layer.get_base_layer()
    active = layer.active_adapters
    if layer.disable_adapters or layer.merged or len(active) != 1 or type(base) is not torch.nn.Linear:
        return False
    name = active[0]
    return (
        name in layer.lora_A
        and name not in getattr(layer, "lora_variant", {})  # DoRA and other variants
        and not getattr(layer, "lora_bias", {}).get(name, False)
        and not base.weight.requires_grad
        and base.weight.dtype.is_floating_point
    )


def _forward(self, x, *args, **kwargs):
    import torch

    if args or kwargs or x.is_cuda or not _fusable(self):
        return self._peft_forward(x, *args, **kwargs)
    base = self.get_base_layer()
    autocast = torch.is_autocast_enabled(x.device.type)
    if autocast and torch.get_autocast_dtype(x.device.type) != base.weight.dtype:
        return self._peft_forward(x, *args, **kwargs)  # autocast would cast the whole base weight per call
    name = self.active_adapters[0]
    drop = self.lora_dropout[name]
    p = drop.p if self.training and isinstance(drop, torch.nn.Dropout) else 0.0
    with torch.autocast(x.device.type, enabled=False):  # the function casts for itself (same products)
        return _function().apply(x, base.weight, base.bias, self.lora_A[name].weight, self.lora_B[name].weight,
                                 float(self.scaling[name]), p, self._fast_dropout)  # fmt: skip


def install(model, fast_dropout: bool = True) -> int:
    """Route every PEFT LoRA linear of `model` through the fused function; the count. Parameters, names
    and state dicts do not change (checkpoints and the saved adapter are PEFT's)."""
    import torch
    from peft.tuners.lora.layer import Linear

    forward = torch.compiler.disable(_forward)  # eager under torch.compile: its own autograd, random masks
    count = 0
    for module in model.modules():
        if isinstance(module, Linear) and not hasattr(module, "_peft_forward"):
            module._peft_forward = module.forward
            module._fast_dropout = fast_dropout
            module.forward = types.MethodType(forward, module)
            count += 1
    return count
