"""FinetuneConfig.compile: a compiled run trains, its checkpoints and adapter keep the plain names
(so resume and loading work), and a worker that cannot compile trains uncompiled and says so."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from training.engine import FinetuneConfig, compiling, run_finetune


def cfg(base: str, **kw) -> FinetuneConfig:
    defaults = dict(base_model=base, max_steps=4, batch_size=4, logging_steps=1, save_steps=2, eval_fraction=0,
                    learning_rate=1e-3, max_seq_len=64, compile=True)  # fmt: skip
    return FinetuneConfig(**{**defaults, **kw})


@pytest.mark.timeout(900)  # a cold inductor cache on a busy 2-core box took 120 s
def test_a_compiled_run_trains_saves_plain_names_and_resumes(tiny_base, records, tmp_path):
    if compiling.compiler_missing("cpu"):
        pytest.skip(f"cannot compile here: {compiling.compiler_missing('cpu')}")
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    points, lines = [], []
    result = run_finetune(cfg(tiny_base), records[:40], tmp_path, on_progress=points.append, on_log_line=lines.append)
    assert result.status == "succeeded" and any("decoder layers compiled" in line for line in lines)
    assert all(math.isfinite(p["train_loss"]) for p in points if p["train_loss"] is not None)
    for weights in [result.adapter_dir, tmp_path / "checkpoints" / "checkpoint-4"]:
        with safe_open(str(weights / "adapter_model.safetensors"), "pt") as f:
            assert f.keys() and not [k for k in f.keys() if "_orig_mod" in k]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(result.adapter_dir))
    # A longer run over the same folder resumes from the compiled run's checkpoint.
    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-2")
    resumed, lines = [], []
    again = run_finetune(cfg(tiny_base, max_steps=6), records[:40], tmp_path,
                         on_progress=lambda p: resumed.append(p["step"]), on_log_line=lines.append)  # fmt: skip
    assert "resuming from checkpoint-4" in lines and again.status == "succeeded" and resumed == [5, 6]


def test_a_worker_that_cannot_compile_trains_uncompiled_and_says_why(tiny_base, records, tmp_path, monkeypatch):
    monkeypatch.setattr(compiling, "compiler_missing", lambda device: "no C++ compiler on this worker")
    lines = []
    result = run_finetune(cfg(tiny_base, max_steps=2, save_steps=0), records[:20], tmp_path, on_log_line=lines.append)
    assert result.status == "succeeded"
    assert any("torch.compile is off for this run: no C++ compiler" in line for line in lines)
    assert json.loads((result.adapter_dir / "run_config.json").read_text())["compile"] is True
