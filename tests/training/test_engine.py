"""The training engine on a tiny random Llama: masking, padding-free batches,
outputs, cancel, resume from the last complete checkpoint, and clear errors."""

from __future__ import annotations

import json

import pytest

from training.engine import ConfigError, EngineError, FinetuneConfig, run_finetune
from training.engine import data as data_mod
from training.engine.train import load_base


def cfg(base: str, **kw) -> FinetuneConfig:
    defaults = dict(base_model=base, max_steps=6, batch_size=4, logging_steps=1, save_steps=0, eval_fraction=0.1,
                    learning_rate=1e-3, max_seq_len=128)  # fmt: skip
    return FinetuneConfig(**{**defaults, **kw})


@pytest.mark.parametrize(
    "field, value",
    [("rank", 0), ("learning_rate", 0.0), ("method", "full"), ("max_seq_len", 4), ("eval_fraction", 0.9),
     ("scheduler", "zigzag"), ("base_model", ""), ("target_modules", [])],
)  # fmt: skip
def test_bad_settings_name_their_field(field, value):
    with pytest.raises(ConfigError) as info:
        FinetuneConfig(**{"base_model": "x", field: value})
    assert info.value.field == field


def test_the_loss_is_only_on_answer_tokens(tiny_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    record = {"instruction": "What is LoRA?", "input": "", "output": "A small adapter."}
    example = data_mod.encode(tok, "instruction", record, 256)
    trained = [i for i, label in zip(example.input_ids, example.labels, strict=True) if label != -100]
    assert tok.decode(trained) == "A small adapter.<|end|>\n"
    assert "What is LoRA?" in tok.decode(example.input_ids)
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                         {"role": "assistant", "content": "Goodbye."}]}  # fmt: skip
    example = data_mod.encode(tok, "chat", chat, 256)
    trained = tok.decode([i for i, label in zip(example.input_ids, example.labels, strict=True) if label != -100])
    assert trained == "Hello.<|end|>\nGoodbye.<|end|>\n"


def test_a_run_writes_the_adapter_config_metrics_and_model_card(tiny_base, records, tmp_path):
    points = []
    card = {"name": "Glossary tutor", "base_name": "Tiny demo model", "base_hub_id": "",
            "datanets": [{"name": "Fine-tuning glossary", "version": 1, "size": 290, "root": "ab" * 32}]}  # fmt: skip
    result = run_finetune(cfg(tiny_base), records[:80], tmp_path, on_progress=points.append, card=card)
    assert result.status == "succeeded" and result.steps == 6
    files = {p.name for p in result.adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "run_config.json", "metrics.json", "README.md"} <= files
    assert json.loads((result.adapter_dir / "run_config.json").read_text())["base_model"] == tiny_base
    assert "eval_loss" in json.loads((result.adapter_dir / "metrics.json").read_text())
    readme = (result.adapter_dir / "README.md").read_text()
    assert "Fine-tuning glossary | v1 | 290 | `" + "ab" * 32 in readme
    # The card names the base model for people; the folder it was loaded from stays on the server.
    assert "adapter for Tiny demo model" in readme and tiny_base not in readme and "base_model:" not in readme
    train_points = [p for p in points if p["train_loss"] is not None]
    assert [p["step"] for p in train_points] == [1, 2, 3, 4, 5, 6]
    assert all(p["tokens_per_second"] > 0 and p["learning_rate"] is not None for p in train_points)
    assert train_points[-1]["progress"] == 1.0
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(result.adapter_dir))


def test_cancel_stops_after_the_current_step(tiny_base, records, tmp_path):
    steps = []
    result = run_finetune(
        cfg(tiny_base, max_steps=50), records[:80], tmp_path,
        on_progress=lambda p: steps.append(p["step"]), should_cancel=lambda: len(steps) >= 3,
    )  # fmt: skip
    # Seen right after step 3's point (the check runs once a step is reported): no further step starts.
    assert result.status == "cancelled" and result.steps == 3 and result.adapter_dir is None


def test_a_resumed_run_starts_from_the_last_complete_checkpoint(tiny_base, records, tmp_path):
    seen = []
    first = run_finetune(
        cfg(tiny_base, max_steps=10, save_steps=4, eval_fraction=0), records[:80], tmp_path,
        on_progress=lambda p: seen.append(p["step"]), should_cancel=lambda: len(seen) >= 6,
    )  # fmt: skip
    assert first.status == "cancelled"
    half_written = tmp_path / "checkpoints" / "checkpoint-6"
    half_written.mkdir()  # as if the worker died while saving: no completion marker
    lines, resumed = [], []
    second = run_finetune(
        cfg(tiny_base, max_steps=10, save_steps=4, eval_fraction=0), records[:80], tmp_path,
        on_progress=lambda p: resumed.append(p["step"]), on_log_line=lines.append,
    )  # fmt: skip
    assert "resuming from checkpoint-4" in lines
    assert resumed == [5, 6, 7, 8, 9, 10] and second.status == "succeeded"
    assert not half_written.exists()


def test_out_of_memory_ends_with_advice(tiny_base, records, tmp_path, monkeypatch):
    import torch
    from transformers import LlamaForCausalLM

    def boom(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(LlamaForCausalLM, "forward", boom)
    with pytest.raises(EngineError, match="smaller batch size.*shorter sequences.*QLoRA"):
        run_finetune(cfg(tiny_base), records[:20], tmp_path)


def test_empty_data_after_filtering_is_a_clear_error(tiny_base, tmp_path):
    with pytest.raises(EngineError, match="empty after filtering"):
        run_finetune(cfg(tiny_base), [], tmp_path)


def test_qlora_needs_a_cuda_worker(tiny_base, records, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this worker has CUDA")
    with pytest.raises(EngineError, match="QLoRA needs a CUDA GPU"):
        run_finetune(cfg(tiny_base, method="qlora"), records[:10], tmp_path)


def test_a_folder_without_weights_is_a_clear_error(tiny_base, tmp_path):
    import shutil

    broken = tmp_path / "noweights"
    shutil.copytree(tiny_base, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(EngineError, match="Could not load the weights"):
        run_finetune(cfg(str(broken)), [{"instruction": "a", "input": "", "output": "b"}], tmp_path / "out")


@pytest.mark.gpu
def test_qlora_nf4_with_bf16_trains_on_cuda(tiny_base, records, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (runs on GPU workers)")
    result = run_finetune(cfg(tiny_base, method="qlora", precision="bf16"), records[:80], tmp_path)
    assert result.status == "succeeded"
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 16 and (result.adapter_dir / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("accumulated, adapter, wrapped", [(None, True, False), (37, True, False), (None, False, False),
                                                         (None, True, True)])  # fmt: skip
def test_the_answer_only_output_layer_gives_the_standard_loss_and_gradients(
    tiny_base, records, accumulated, adapter, wrapped, tmp_path
):
    """With an adapter (the output layer frozen) and without (every weight trained, the output layer too),
    and wrapped in DistributedDataParallel as a run on several processes is (a group of one here)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    from training.engine import loss as loss_mod

    tok = AutoTokenizer.from_pretrained(tiny_base)
    torch.manual_seed(0)
    _, model, _ = load_base(cfg(tiny_base, precision="fp32"))  # exact comparison: fp32 on any machine
    if adapter:
        model = get_peft_model(model, LoraConfig(
            r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"))  # fmt: skip
    assert model.get_output_embeddings().weight.requires_grad != adapter
    if wrapped:
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
        model = torch.nn.parallel.DistributedDataParallel(model)
    items = [{"input_ids": e.input_ids, "labels": e.labels}
             for e in (data_mod.encode(tok, "instruction", r, 128) for r in records[:6])]  # fmt: skip
    batch = data_mod.PaddingFreeCollator(160, tok.pad_token_id)(items)
    assert loss_mod.supported(model)

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    try:
        standard = loss_and_grads(lambda: model(**batch, num_items_in_batch=accumulated).loss)
        ours = loss_and_grads(lambda: loss_mod.answer_loss(model, batch, accumulated, chunk=7))  # several chunks
        with torch.no_grad():  # evaluation: the same value, no gradients worked out
            evaluated = loss_mod.answer_loss(model, batch, accumulated, chunk=7).item()
    finally:
        if wrapped:
            torch.distributed.destroy_process_group()
    assert abs(standard[0] - ours[0]) < 1e-5 and abs(evaluated - standard[0]) < 1e-5
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(standard[1], ours[1], strict=True))


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                        (False, False, "fp32")])  # fmt: skip
def test_precision_auto_trains_in_bf16_where_the_cpu_multiplies_it_natively(
    tiny_base, records, tmp_path, monkeypatch, avx512_bf16, amx, expected
):
    """On a CPU worker "auto" is bf16 with AVX512-BF16 or AMX (measured ~2x fp32 there), else fp32; the
    job's log says which, the base is loaded in it, and the saved adapter is fp32 whatever the format."""
    import torch
    from safetensors.torch import load_file

    from training.engine import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert precision.resolve("auto", torch) == expected
    assert precision.resolve("fp32", torch) == "fp32" and precision.resolve("bf16", torch) == "bf16"
    _, model, chosen = load_base(cfg(tiny_base))
    assert chosen == expected and model.dtype == {"bf16": torch.bfloat16, "fp32": torch.float32}[expected]
    lines = []
    result = run_finetune(
        cfg(tiny_base, max_steps=2, eval_fraction=0), records[:20], tmp_path, on_log_line=lines.append
    )
    assert f"number format: {expected} (chosen automatically for this device)" in lines and result.status == "succeeded"
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert weights and all(w.dtype == torch.float32 for w in weights.values())


KERNEL_CACHE_SCRIPT = """
import ctypes, sys, torch
from training.engine import precision
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
libc = ctypes.CDLL("libc.so.6")
took = precision.cap_kernel_cache("cpu", torch.bfloat16)
layer = torch.nn.Linear(256, 1024).bfloat16()
libc.malloc_trim(0)
start = rss()
for rows in range(128, 128 * 60, 128):  # a new shape each time, as a skewed run's batches
    layer(torch.randn(rows, 256, dtype=torch.bfloat16, requires_grad=True)).sum().backward()
libc.malloc_trim(0)
print(took, rss() - start)
"""


def test_cpu_16_bit_keeps_few_matrix_product_set_ups(monkeypatch):
    """On CPU in bf16 ideep keeps a set-up (with buffers of its own) for every product shape it meets;
    the engine caps them (precision.cap_kernel_cache) unless the operator set the cap, and only there."""
    import os
    import subprocess
    import sys

    import torch

    from training.engine import precision

    monkeypatch.delenv("LRU_CACHE_CAPACITY", raising=False)
    assert not precision.cap_kernel_cache("cpu", torch.float32) and not precision.cap_kernel_cache("cuda", "bf16")
    assert "LRU_CACHE_CAPACITY" not in os.environ
    if not precision.cpu_has_bf16(torch) or not os.path.exists("/proc/self/statm"):
        pytest.skip("needs Linux on a CPU with native bf16 products (AVX512-BF16 or AMX)")

    def grown(operator_cap: str | None) -> tuple[bool, float]:
        env = {k: v for k, v in os.environ.items() if k != "LRU_CACHE_CAPACITY"}
        env.update({"LRU_CACHE_CAPACITY": operator_cap} if operator_cap else {})
        out = subprocess.run([sys.executable, "-c", KERNEL_CACHE_SCRIPT], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        took, megabytes = out.stdout.split()
        return took == "True", float(megabytes)

    (capped, capped_mb), (kept, kept_mb) = grown(None), grown("1024")
    assert capped and not kept  # the operator's own setting stays
    assert capped_mb < kept_mb - 10, (capped_mb, kept_mb)
