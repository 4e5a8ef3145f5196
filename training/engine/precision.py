"""The number format `precision="auto"` trains in, by device (FinetuneConfig.precision).

bf16 where the hardware multiplies bf16 natively: a GPU that supports it, or a CPU with AVX512-BF16 or
AMX tiles. The base model is loaded in bf16 (half the memory), the LoRA adapter stays in fp32 (PEFT),
and the Trainer runs under bf16 autocast, as on a GPU. Measured on the benchmark's CPU (AVX512-BF16,
bench/train_throughput.py): bf16 products ran ~4x the fp32 ones (900 against 120-220 GFLOP/s), and
training at 8 x 512 tokens ~2x the tokens/s of fp32 with the same loss. Elsewhere fp32: a CPU without
bf16 instructions emulates them, slower than fp32.
"""

from __future__ import annotations

import os

KERNEL_CACHE = 32  # ideep's kept matrix-product set-ups per thread on CPU in 16 bits (cap_kernel_cache)


def cpu_has_bf16(torch) -> bool:
    """Native bf16 products on this CPU (AVX512-BF16 or AMX tiles)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own checks (private)
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve(choice: str, torch) -> str:
    """`choice` ("auto", "fp32", "bf16" or "fp16") as the format to train in on this machine."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16(torch) else "fp32"


def per_shape_kernels(device_type: str, dtype) -> bool:
    """Whether work in `dtype` (a torch dtype or a precision name) on `device_type` gets a kernel built
    (JIT) and kept for each new shape: 16-bit floats on CPU (oneDNN, torch's CPU flash attention). Work
    there comes in few shapes (row_multiple, loss.spans, attention._causal)."""
    half = dtype in ("bf16", "fp16") or getattr(dtype, "itemsize", 4) == 2
    return device_type == "cpu" and half


def row_multiple(precision: str, device_type: str, packed: bool = True) -> int:
    """Tokens a batch's width is rounded up to where kernels are built per shape (per_shape_kernels), else 1
    (no pad tokens). Padding-free batches (one row; data.PaddingFreeCollator): 128. Measured at skewed
    batch 8 (~560 tokens a batch, 3 alternated runs each): 64 and 128 ran at the same speed, the pad
    tokens costing what fewer kernel builds save, and 128 held ~80 MB less (~835 against ~915 MB);
    without rounding a 40-step run grew by ~15 MB a step. Padded batches (data.PaddingCollator, packing
    off): 32, the attention's own rounding (attention.ROUND), so widths up to 512 come in 16 sizes."""
    if not per_shape_kernels(device_type, precision):
        return 1
    return 128 if packed else 32


def cap_kernel_cache(device_type: str, dtype) -> bool:
    """Where kernels are built per shape (per_shape_kernels), keep at most KERNEL_CACHE of ideep's
    matrix-product set-ups (its LRU_CACHE_CAPACITY, 1024 by default) instead of one per shape seen: each
    holds buffers of its own, and a skewed run meets many shapes. oneDNN's own kernel cache stays as it
    is (building kernels is what costs time). Measured on the bench's model (3 alternated runs a shape,
    bf16, medians): skewed batch 8 836 -> 786 MB, ~4k tokens a step 1,331 -> 1,301 MB, 8 x 512 (one
    shape) unchanged, tokens/s within the noise (a cap of 8 saved a few MB more; capping oneDNN's cache
    too saved ~40 MB more and ran slower). ideep reads the variable when a thread first multiplies in 16
    bits, so it counts only before that (a process's first run); an operator's own setting is kept.
    Whether the cap is the one in force."""
    if not per_shape_kernels(device_type, dtype):
        return False
    os.environ.setdefault("LRU_CACHE_CAPACITY", str(KERNEL_CACHE))
    return os.environ["LRU_CACHE_CAPACITY"] == str(KERNEL_CACHE)
