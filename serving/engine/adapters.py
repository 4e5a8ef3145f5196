"""LoRA adapters served from a bank beside one resident base model.

peft's `load_adapter` walks every module per load and its mixed-batch forward
loops over adapters in Python, so both slow down as adapters pile up. Here each
target Linear of the base is wrapped once; an adapter is just its A/B tensors in
a slot of every wrapped layer, read straight from `adapter_model.safetensors`.
A batch picks a slot per row and adds `scale · (x Aᵀ) Bᵀ` with two batched
matmuls, whatever the mix of adapters. Loading is a file read and a copy;
switching adapters costs nothing; evicting deletes the slot's tensors.
Standard LoRA adapters (any rank, rsLoRA too) on Linear layers are supported.
"""

from __future__ import annotations

import ctypes
import gc
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

BASE_SLOT = 0  # the plain base model: no delta


class AdapterError(RuntimeError):
    """An adapter that cannot be served; the message says why."""


class AdapterBusy(AdapterError):
    """No room now: every resident adapter is in use by running requests. Waiting helps."""


@dataclass
class Resident:
    name: str
    path: str
    slot: int
    nbytes: int
    load_ms: float


def _trim_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed arenas otherwise
    except OSError:
        pass


def _banked_linear_class():
    import torch

    class BankedLinear(torch.nn.Module):
        """A frozen Linear plus per-slot LoRA factors, chosen per batch row."""

        def __init__(self, base: torch.nn.Linear):
            super().__init__()
            self.base = base
            self.a: dict[int, torch.Tensor] = {}  # slot → (r, in)
            self.b: dict[int, torch.Tensor] = {}  # slot → (out, r), scale folded in
            self.rows: list[int] | None = None  # slot per batch row, set by the bank

        def forward(self, x):  # (B, T, in)
            y = self.base(x)
            rows = self.rows
            present = [self.a[s] for s in rows or () if s in self.a]
            if not present:
                return y
            r = max(t.shape[0] for t in present)  # rows of lower rank are zero-padded up to r
            pad_a = lambda t: t if t.shape[0] == r else torch.nn.functional.pad(t, (0, 0, 0, r - t.shape[0]))  # noqa: E731
            pad_b = lambda t: t if t.shape[1] == r else torch.nn.functional.pad(t, (0, r - t.shape[1]))  # noqa: E731
            zero_a, zero_b = x.new_zeros(r, x.shape[-1]), x.new_zeros(y.shape[-1], r)
            a = torch.stack([pad_a(self.a[s]) if s in self.a else zero_a for s in rows])  # (B, r, in)
            b = torch.stack([pad_b(self.b[s]) if s in self.b else zero_b for s in rows])  # (B, out, r)
            return y + torch.bmm(torch.bmm(x, a.transpose(1, 2)), b.transpose(1, 2))

    return BankedLinear


class AdapterBank:
    """Wraps the base model's Linear layers once and holds adapters in slots."""

    def __init__(self, model, max_rank: int = 64):
        import torch

        self.model, self.max_rank = model, max_rank
        banked = _banked_linear_class()
        self.layers: dict[str, torch.nn.Module] = {}
        for name, module in list(model.named_modules()):
            for child_name, child in list(module.named_children()):
                full = f"{name}.{child_name}" if name else child_name
                if isinstance(child, torch.nn.Linear) and "lm_head" not in full:
                    wrapper = banked(child)
                    setattr(module, child_name, wrapper)
                    self.layers[full] = wrapper

    def set_rows(self, slots: list[int] | None) -> None:
        for layer in self.layers.values():
            layer.rows = slots

    def load(self, slot: int, folder: Path) -> int:
        """Copy an adapter's factors into `slot`; returns the bytes it holds."""
        import torch
        from safetensors.torch import load_file

        config = json.loads((folder / "adapter_config.json").read_text())
        if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
            raise AdapterError("Only plain LoRA adapters are served from the bank (DoRA: export merged weights).")
        rank, alpha = int(config["r"]), float(config.get("lora_alpha", config["r"]))
        if rank > self.max_rank:
            raise AdapterError(f"Adapter rank {rank} is above this server's maximum of {self.max_rank}.")
        scale = alpha / (rank**0.5) if config.get("use_rslora") else alpha / rank
        weights_file = folder / "adapter_model.safetensors"
        if not weights_file.exists():
            raise AdapterError(f"No adapter_model.safetensors in {folder}.")
        tensors = load_file(str(weights_file))
        pairs: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            for part in ("lora_A", "lora_B"):
                marker = f".{part}."
                if marker in key:
                    module = key.split(marker)[0].removeprefix("base_model.model.")
                    pairs.setdefault(module, {})[part] = tensor
        unknown = [m for m in pairs if m not in self.layers]
        if unknown or not pairs:
            raise AdapterError(f"The adapter targets layers this base model does not have: {unknown[:3]}.")
        nbytes = 0
        for module, ab in pairs.items():
            layer = self.layers[module]
            weight = layer.base.weight
            a = ab["lora_A"].to(weight.device, weight.dtype).contiguous()  # (r, in)
            b = (ab["lora_B"].to(weight.device, weight.dtype) * scale).contiguous()  # (out, r), scale folded in
            layer.a[slot], layer.b[slot] = a, b
            nbytes += a.numel() * a.element_size() + b.numel() * b.element_size()
        return nbytes

    def drop(self, slot: int) -> None:
        for layer in self.layers.values():
            layer.a.pop(slot, None)
            layer.b.pop(slot, None)


class AdapterCache:
    """Which adapters are resident, least recently used first out; bounded by count and bytes."""

    def __init__(self, model, max_adapters: int = 16, max_bytes: int = 2 << 30, max_rank: int = 64):
        self.bank = AdapterBank(model, max_rank)
        self.model = model
        self.max_adapters, self.max_bytes = max_adapters, max_bytes
        self.resident: OrderedDict[str, Resident] = OrderedDict()
        self.hits = self.misses = self.evictions = 0
        self.load_ms: list[float] = []
        self.lock = threading.RLock()
        self._next_slot = 1

    @property
    def resident_bytes(self) -> int:
        return sum(r.nbytes for r in self.resident.values())

    def slot_of(self, name: str | None) -> int:
        return BASE_SLOT if name is None else self.resident[name].slot

    def ensure(self, name: str, path: str | Path, pinned: set[str] = frozenset()) -> Resident:
        """Make `name` resident (loading from `path` on a miss) and mark it most recently used."""
        with self.lock:
            if name in self.resident:
                self.hits += 1
                self.resident.move_to_end(name)
                return self.resident[name]
            self.misses += 1
            folder = Path(path)
            if not (folder / "adapter_config.json").exists():
                raise AdapterError(f"No adapter at {folder} (adapter_config.json missing).")
            incoming = sum(f.stat().st_size for f in folder.glob("adapter_model.*"))
            self._make_room(incoming, pinned)
            start = time.perf_counter()
            slot, self._next_slot = self._next_slot, self._next_slot + 1
            try:
                nbytes = self.bank.load(slot, folder)
            except Exception:
                self.bank.drop(slot)
                raise
            ms = (time.perf_counter() - start) * 1000
            self.load_ms.append(ms)
            self.resident[name] = Resident(name, str(folder), slot, nbytes, ms)
            return self.resident[name]

    def _make_room(self, incoming: int, pinned: set[str]) -> None:
        while self.resident and (
            len(self.resident) >= self.max_adapters or self.resident_bytes + incoming > self.max_bytes
        ):
            victim = next((n for n in self.resident if n not in pinned), None)
            if victim is None:
                raise AdapterBusy("Every resident adapter is in use; retry in a moment.")
            self.evict(victim)

    def evict(self, name: str) -> None:
        with self.lock:
            entry = self.resident.pop(name, None)
            if entry is None:
                return
            self.bank.drop(entry.slot)
            self.evictions += 1
            _trim_heap()
