"""Adapters kept resident on one base model, least recently used evicted first.

The cache is bounded by a count and by bytes (the adapter's LoRA tensors). Loading
goes through peft's `load_adapter`, so any PEFT folder works; eviction calls
`delete_adapter`, drops the tensors and hands freed heap back to the OS.
"""

from __future__ import annotations

import ctypes
import gc
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path


class AdapterError(RuntimeError):
    """An adapter that cannot be served; the message says why."""


@dataclass
class Resident:
    name: str
    path: str
    nbytes: int
    load_ms: float
    last_used: float = field(default_factory=time.monotonic)


def _trim_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed arenas otherwise
    except OSError:
        pass


class AdapterCache:
    def __init__(self, model, max_adapters: int = 16, max_bytes: int = 2 << 30):
        self.model = model  # a PeftModel, or a plain model until the first adapter arrives
        self.max_adapters, self.max_bytes = max_adapters, max_bytes
        self.resident: OrderedDict[str, Resident] = OrderedDict()
        self.hits = self.misses = self.evictions = 0
        self.load_ms: list[float] = []
        self.lock = threading.RLock()

    @property
    def resident_bytes(self) -> int:
        return sum(r.nbytes for r in self.resident.values())

    def _adapter_bytes(self, name: str) -> int:
        return sum(p.numel() * p.element_size() for n, p in self.model.named_parameters() if f".{name}." in n)

    def ensure(self, name: str, path: str | Path, pinned: set[str] = frozenset()) -> Resident:
        """Make `name` resident (loading from `path` on a miss) and mark it most recently used."""
        with self.lock:
            if name in self.resident:
                self.hits += 1
                self.resident.move_to_end(name)
                self.resident[name].last_used = time.monotonic()
                return self.resident[name]
            self.misses += 1
            folder = Path(path)
            if not (folder / "adapter_config.json").exists():
                raise AdapterError(f"No adapter at {folder} (adapter_config.json missing).")
            size_on_disk = sum(f.stat().st_size for f in folder.glob("adapter_model.*"))
            self._make_room(size_on_disk, pinned)
            start = time.perf_counter()
            self._load(name, str(folder))
            ms = (time.perf_counter() - start) * 1000
            self.load_ms.append(ms)
            entry = Resident(name, str(folder), self._adapter_bytes(name), ms)
            self.resident[name] = entry
            return entry

    def _load(self, name: str, folder: str) -> None:
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model.load_adapter(folder, adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, folder, adapter_name=name)
        self.model.eval()

    def _make_room(self, incoming: int, pinned: set[str]) -> None:
        while self.resident and (
            len(self.resident) >= self.max_adapters or self.resident_bytes + incoming > self.max_bytes
        ):
            victim = next((n for n in self.resident if n not in pinned), None)
            if victim is None:
                raise AdapterError("Every resident adapter is in use; retry in a moment.")
            self.evict(victim)

    def evict(self, name: str) -> None:
        with self.lock:
            if name not in self.resident:
                return
            del self.resident[name]
            self.model.delete_adapter(name)
            self.evictions += 1
            _trim_heap()
