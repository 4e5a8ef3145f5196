"""The gated MLP's activation as one autograd function, in pieces (FinetuneConfig.fused_mlp).

Llama-style MLPs compute `down(silu(gate(x)) * up(x))`. Eager PyTorch runs that as two passes over the
(tokens × intermediate) tensors forward (silu, then the product) and three backward (two products and
silu's gradient), each one a whole tensor (16 MB at 4,096 tokens and intermediate 1,024), and autograd
keeps silu's output for backward: a third tensor of that size per layer, besides gate and up.

Here forward and backward walk the rows in pieces of ~512k elements, all the elementwise work on a piece
done before the next: backward keeps only `gate` and `up` (silu is recomputed from gate, piece by piece),
and no temporary is larger than a piece. Same values and gradients as the stock module (test). Measured
on the benchmark's CPU (bench/train_throughput.py, and in-process A/B runs at 8 x 512): one such tensor
less per layer of peak memory, speed within the noise (smaller pieces, 32k elements, were slower).

Used on CPU, outside torch.compile (which fuses these itself), for modules with gate_proj, up_proj,
down_proj and a SiLU act_fn; anything else runs its own forward.
"""

from __future__ import annotations

import functools
import types

PIECE_ELEMENTS = 512 * 1024  # elements of one tensor per piece (2 MB in fp32): the largest temporary


def _pieces(rows: int, width: int):
    step = max(1, PIECE_ELEMENTS // max(1, width))
    return [slice(start, start + step) for start in range(0, rows, step)]


@functools.cache
def _function():
    """The autograd function (built on first use: this module imports without torch)."""
    import torch
    import torch.nn.functional as F

    silu_backward = torch.ops.aten.silu_backward.grad_input

    class SiluGate(torch.autograd.Function):
        @staticmethod
        def forward(ctx, gate, up):
            g, u = gate.reshape(-1, gate.shape[-1]), up.reshape(-1, up.shape[-1])
            out = torch.empty_like(u, memory_format=torch.contiguous_format)
            for rows in _pieces(*g.shape):
                torch.mul(F.silu(g[rows]), u[rows], out=out[rows])
            ctx.save_for_backward(gate, up)
            return out.view(up.shape)

        @staticmethod
        def backward(ctx, grad):
            gate, up = ctx.saved_tensors
            g, u = gate.reshape(-1, gate.shape[-1]), up.reshape(-1, up.shape[-1])
            d = grad.reshape(-1, grad.shape[-1])
            want_gate, want_up = ctx.needs_input_grad[:2]
            grad_gate = torch.empty_like(g, memory_format=torch.contiguous_format) if want_gate else None
            grad_up = torch.empty_like(u, memory_format=torch.contiguous_format) if want_up else None
            for rows in _pieces(*g.shape):
                if want_up:
                    torch.mul(d[rows], F.silu(g[rows]), out=grad_up[rows])
                if want_gate:
                    silu_backward(d[rows] * u[rows], g[rows], grad_input=grad_gate[rows])
            return (grad_gate.view(gate.shape) if want_gate else None, grad_up.view(up.shape) if want_up else None)

    return SiluGate


def silu_gate(gate, up):
    """`silu(gate) * up`, its backward keeping only gate and up."""
    return _function().apply(gate, up)


def _forward(self, x):
    import torch

    if x.is_cuda or torch.compiler.is_compiling():
        return self._stock_forward(x)
    return self.down_proj(silu_gate(self.gate_proj(x), self.up_proj(x)))


def _gated_silu(module) -> bool:
    import torch
    from transformers.activations import SiLUActivation

    parts = all(hasattr(module, name) for name in ("gate_proj", "up_proj", "down_proj"))
    silu = type(getattr(module, "act_fn", None)) in (SiLUActivation, torch.nn.SiLU)
    return parts and silu and type(module).__name__.endswith("MLP")  # Llama, Mistral, Qwen: down(act(gate) * up)


def install(model) -> int:
    """Route every SiLU-gated MLP of `model` through the fused activation; the count. Parameters, names and
    state dicts do not change."""
    count = 0
    for module in model.modules():
        if _gated_silu(module) and not hasattr(module, "_stock_forward"):
            module._stock_forward = module.forward
            module.forward = types.MethodType(_forward, module)
            count += 1
    return count
