"""Which checkpoints of a training run TracIn replays, and the learning rate each one stands for.

The training engine writes ``<run>/checkpoints/checkpoint-<step>/`` (with a COMPLETE marker once fully written)
and the final ``<run>/adapter/``; the learning rates come from the Trainer's ``trainer_state.json`` log.
Plain Python + numpy; never imports Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COMPLETE = "COMPLETE"  # the training engine's marker in a fully written checkpoint


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
