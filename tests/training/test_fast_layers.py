"""The engine's speed switches do the stock computation: attention per example (varlen) gives the
logits of each example run alone and falls back to masks for a model it cannot serve; fused LoRA layers
give PEFT's values and gradients, and the fused MLP activation, norms and rotary embedding the stock
ones; fast dropout drops each element independently with exactly the asked rate; reusing freed memory
serves large tensors from the heap, not from pages of their own."""

from __future__ import annotations

import pytest

from training.engine import FinetuneConfig, attention, dropout, fused_lora, fused_mlp, fused_norm, heap, run_finetune
from training.engine import data as data_mod
from training.engine.dropout import draw, fast_dropout, zero
from training.engine.train import _row_len, load_base


def cfg(base: str, **kw) -> FinetuneConfig:
    """fp32 unless asked (values compared to 1e-6 here; "auto" is bf16 on a CPU with native bf16)."""
    values = {"base_model": base, "schema": "instruction", "batch_size": 8, "max_seq_len": 128, "save_steps": 0,
              "logging_steps": 1, "eval_fraction": 0, "max_steps": 4, "precision": "fp32"}  # fmt: skip
    return FinetuneConfig.from_dict({**values, **kw})


def items(tok, records, n=7):
    return [{"input_ids": e.input_ids, "labels": e.labels}
            for e in (data_mod.encode(tok, "instruction", r, 128) for r in records[:n])]  # fmt: skip


@pytest.mark.parametrize("varlen", [True, False])
def test_packed_examples_get_the_logits_they_get_alone_with_either_attention(tiny_base, records, varlen):
    import torch

    tok, model, _ = load_base(cfg(tiny_base, varlen=varlen))
    assert model.config._attn_implementation == (attention.NAME if varlen else "sdpa")
    said = []
    row_len = _row_len(cfg(tiny_base, varlen=varlen), model, said.append)
    assert row_len == (None if varlen else 128) and not said
    batch = items(tok, records)
    collator = data_mod.PaddingFreeCollator(row_len, tok.pad_token_id)
    packed, layout = collator(batch), collator.rows(batch)
    assert (packed["input_ids"].shape[0] == 1) == varlen  # varlen: the whole batch in one row, no padding
    model.eval()
    with torch.no_grad():
        together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits
        for r, row in enumerate(layout):
            at = 0
            for item in row:
                alone = model(input_ids=torch.tensor([item["input_ids"]]), use_cache=False).logits[0]
                assert torch.allclose(together[r, at : at + len(item["input_ids"])], alone, atol=1e-4)
                at += len(item["input_ids"])


def test_a_model_whose_attention_ignores_positions_goes_back_to_masks(tiny_base, monkeypatch):
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    tok, model, _ = load_base(cfg(tiny_base))

    def blind(module, q, k, v, mask, position_ids=None, **kw):  # as an architecture that never passes them
        return sdpa_attention_forward(module, q, k, v, mask, **kw)

    AttentionInterface.register(attention.NAME, blind)
    try:
        said = []
        assert _row_len(cfg(tiny_base), model, said.append) == 128
        assert model.config._attn_implementation == "sdpa" and "does not keep packed examples apart" in said[0]
    finally:
        attention.register()


def adapted(tiny_base, records, targets, precision="fp32"):
    """A tiny PEFT model (LoRA on `targets`, no dropout) in training mode, a packed batch, and a function
    giving its loss and the adapter's gradients on that batch (under bf16 autocast for "bf16", as the
    Trainer runs it: the base in bf16, the adapter in fp32)."""
    import contextlib

    import torch
    from peft import LoraConfig, get_peft_model

    from training.engine import loss as loss_mod

    tok, model, _ = load_base(cfg(tiny_base, precision=precision))
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=targets, init_lora_weights=False,
                                             lora_dropout=0.0))  # fmt: skip
    batch = data_mod.PaddingFreeCollator(None, tok.pad_token_id)(items(tok, records, 6))
    model.train()

    def loss_and_grads():
        model.zero_grad()
        bf16 = precision == "bf16"
        with torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = loss_mod.answer_loss(model, batch)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    return model, batch, loss_and_grads


def test_fused_lora_layers_give_peft_values_and_gradients(tiny_base, records):
    import torch

    model, _, loss_and_grads = adapted(tiny_base, records, ["q_proj", "v_proj", "gate_proj", "down_proj"])
    peft_loss, peft_grads = loss_and_grads()
    assert fused_lora.install(model) == 4 * model.config.num_hidden_layers  # every adapted projection
    fused_loss, fused_grads = loss_and_grads()
    assert fused_loss == pytest.approx(peft_loss, abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(peft_grads, fused_grads, strict=True))


def test_fused_lora_layers_in_bf16_mixed_precision_match_peft_under_autocast(tiny_base, records):
    """The base in bf16, the adapter in fp32 (PEFT keeps it so), the Trainer's bf16 autocast: the fused
    layers do the products in bf16 as autocast does, so values agree to bf16's rounding, and the
    adapter's gradients come back in fp32."""
    import torch

    model, _, loss_and_grads = adapted(tiny_base, records, ["q_proj", "v_proj", "gate_proj", "down_proj"], "bf16")
    assert model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    adapter = [p for p in model.parameters() if p.requires_grad]
    assert adapter and all(p.dtype == torch.float32 for p in adapter)
    peft_loss, peft_grads = loss_and_grads()
    assert fused_lora.install(model) == 4 * model.config.num_hidden_layers
    fused_loss, fused_grads = loss_and_grads()
    assert fused_loss == pytest.approx(peft_loss, rel=1e-2)
    for a, b in zip(peft_grads, fused_grads, strict=True):  # seen: 1-3% apart (bf16 rounding, summed)
        assert b.dtype == torch.float32 and (a - b).norm() <= 0.06 * a.norm()
    with torch.autocast("cpu", torch.float16):  # autocast to another type than the base's: PEFT's own path
        x = torch.randn(2, 5, model.config.hidden_size, dtype=torch.bfloat16)
        layer = model.get_base_model().model.layers[0].self_attn.q_proj
        assert torch.allclose(layer(x).float(), layer._peft_forward(x).float())


def test_the_fused_mlp_activation_gives_the_stock_values_and_gradients(tiny_base, records, monkeypatch):
    import torch

    from training.engine import loss as loss_mod

    monkeypatch.setattr(fused_mlp, "PIECE_ELEMENTS", 1000)  # several pieces a tensor, the last one short
    model, batch, loss_and_grads = adapted(tiny_base, records, ["q_proj", "gate_proj", "down_proj"])
    stock_loss, stock_grads = loss_and_grads()
    assert fused_mlp.install(model) == model.config.num_hidden_layers and fused_mlp.install(model) == 0
    fused_loss, fused_grads = loss_and_grads()
    assert fused_loss == pytest.approx(stock_loss, abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(stock_grads, fused_grads, strict=True))
    with torch.no_grad():  # evaluation: no autograd graph
        assert loss_mod.answer_loss(model, batch).item() == pytest.approx(stock_loss, abs=1e-6)

    gate = torch.randn(3, 7, 50, requires_grad=True)
    up = torch.randn(3, 7, 50)  # only one side wants a gradient
    fused_mlp.silu_gate(gate, up).sum().backward()
    expected = torch.autograd.grad((torch.nn.functional.silu(gate) * up).sum(), gate)[0]
    assert torch.allclose(gate.grad, expected, atol=1e-6) and up.grad is None
    assert fused_mlp.install(torch.nn.Sequential(torch.nn.Linear(2, 2))) == 0  # no gated MLP: nothing swapped


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_fused_norms_and_rotary_embedding_give_the_stock_values_and_gradients(tiny_base, records, precision):
    import torch
    from transformers.models.llama import modeling_llama

    from training.engine import loss as loss_mod

    model, batch, loss_and_grads = adapted(tiny_base, records, ["q_proj", "k_proj", "down_proj"], precision)
    stock_loss, stock_grads = loss_and_grads()
    layers = model.config.num_hidden_layers
    assert fused_norm.install(model) == 2 * layers + 1  # each layer's two norms and the final one
    assert modeling_llama.apply_rotary_pos_emb._stock  # replaced in the modelling file (once a process)
    assert fused_norm.install(model) == 0  # once only
    fused_loss, fused_grads = loss_and_grads()
    assert fused_loss == pytest.approx(stock_loss, rel=1e-5)
    for a, b in zip(stock_grads, fused_grads, strict=True):  # seen: equal in bf16, ~1e-7 apart in fp32
        assert (a - b).norm() <= 1e-4 * a.norm()
    with torch.no_grad():  # evaluation: no autograd graph, the same loss
        assert loss_mod.answer_loss(model, batch).item() == pytest.approx(stock_loss, rel=1e-5)

    torch.manual_seed(0)  # the functions alone, in bf16: forward bit for bit, gradients within rounding
    norm = modeling_llama.LlamaRMSNorm(40).to(torch.bfloat16).requires_grad_(False)
    norm.weight.copy_(torch.rand(40) + 0.5)
    x = (torch.randn(3, 9, 40) * 3).to(torch.bfloat16).requires_grad_()
    out = torch.randn(3, 9, 40).to(torch.bfloat16)
    expected, (expected_grad,) = norm(x), torch.autograd.grad((norm(x).float() * out).sum(), x)
    got = fused_norm.rms_norm(x, norm.weight, 1e-6)
    (got_grad,) = torch.autograd.grad((got.float() * out).sum(), x)
    assert torch.equal(got, expected)
    assert (got_grad - expected_grad).float().norm() <= 1e-2 * expected_grad.float().norm()
    q = torch.randn(2, 4, 9, 8).to(torch.bfloat16).requires_grad_()
    k = torch.randn(2, 2, 9, 8).to(torch.bfloat16).requires_grad_()
    angles = torch.randn(2, 9, 4)
    cos, sin = (f(torch.cat([angles, angles], -1)).to(torch.bfloat16) for f in (torch.cos, torch.sin))
    grads = [torch.randn(2, 4, 9, 8).to(torch.bfloat16), torch.randn(2, 2, 9, 8).to(torch.bfloat16)]
    stock = modeling_llama.apply_rotary_pos_emb.__dict__.get("_stock", modeling_llama.apply_rotary_pos_emb)
    expected = stock(q, k, cos, sin)
    expected_grads = torch.autograd.grad(expected, (q, k), grads)
    got = fused_norm.rotary(q, k, cos, sin)
    got_grads = torch.autograd.grad(got, (q, k), grads)
    assert all(torch.equal(a, b) for a, b in zip((*expected, *expected_grads), (*got, *got_grads), strict=True))
    assert fused_norm.install(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))) == 0

    # per-example gradients under torch.func (as attribution takes them; the rotary replacement is
    # process-wide): the same as stock's
    def per_example(rope, norm):
        def loss(q1, k1, x1):
            a, b = rope(q1, k1, cos.float(), sin.float())
            return a.sin().sum() + b.cos().sum() + norm(x1).tanh().sum()

        q, k = torch.randn(3, 2, 4, 9, 8), torch.randn(3, 2, 2, 9, 8)
        return torch.func.vmap(torch.func.grad(loss, argnums=(0, 1, 2)))(q, k, torch.randn(3, 9, 40))

    torch.manual_seed(1)
    expected = per_example(stock, modeling_llama.LlamaRMSNorm(40))
    torch.manual_seed(1)
    got = per_example(fused_norm.rotary, lambda x: fused_norm.rms_norm(x, torch.ones(40), 1e-6))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(expected, got, strict=True))


def test_a_fused_layer_with_dropout_is_the_unfused_one_with_the_same_mask():
    import torch

    torch.manual_seed(0)
    x = torch.randn(2, 50, 32, requires_grad=True)
    weight, a, b = torch.randn(24, 32), torch.randn(4, 32, requires_grad=True), torch.randn(24, 4, requires_grad=True)
    torch.manual_seed(1)
    fused = fused_lora._function().apply(x, weight, None, a, b, 2.0, 0.3, True)
    (fused * torch.arange(24.0)).sum().backward()
    grads = [t.grad.clone() for t in (x, a, b)]
    for t in (x, a, b):
        t.grad = None
    torch.manual_seed(1)  # the same draws: the same mask
    dropped_at, keep_scale = draw(x.reshape(-1, 32), 0.3)
    kept = zero(torch.ones(100, 32), dropped_at)
    assert set(kept.unique().tolist()) == {0.0, 1.0} and 0.5 < kept.mean().item() < 0.9
    dropped = x.reshape(-1, 32) * kept * keep_scale
    plain = (x.reshape(-1, 32) @ weight.t() + dropped @ a.t() @ b.t() * 2.0).view(2, 50, 24)
    (plain * torch.arange(24.0)).sum().backward()
    assert torch.allclose(fused, plain, rtol=1e-5, atol=1e-4)
    assert all(torch.allclose(g, t.grad, rtol=1e-5, atol=1e-3) for g, t in zip(grads, (x, a, b), strict=True))


def test_fast_dropout_drops_each_element_with_the_asked_rate_and_keeps_the_mean():
    import torch

    torch.manual_seed(0)
    x = torch.ones(1000, 1000, requires_grad=True)
    y = fast_dropout(x, 0.05)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - 0.05) < 0.002
    assert abs(y.mean().item() - 1.0) < 0.003  # kept values scaled by 1 / (1 - p)
    assert dropped.float().mean(0).std().item() < 0.03  # no column (lane) pattern: independent elements
    y.sum().backward()
    assert torch.equal(x.grad == 0, dropped)  # backward uses the forward's mask
    assert torch.equal(fast_dropout(x, 0.05, training=False), x)
    stock = zero(torch.ones(1000, 1000), draw(x, 0.05, fast=False)[0])  # torch's Bernoulli mask, as on GPUs
    assert abs(1 - stock.mean().item() - 0.05) < 0.002


@pytest.mark.parametrize("margin", [dropout.MARGIN_SIGMAS, -3])  # -3: too few draws at a time, drawn again
def test_dropped_positions_are_independent_bernoulli_trials_at_the_exact_rate(monkeypatch, margin):
    import torch

    monkeypatch.setattr(dropout, "MARGIN_SIGMAS", margin)
    torch.manual_seed(0)
    n, p = 2_000_000, 0.1
    at = dropout.positions(n, p)
    assert at.dtype == torch.int64 and bool((at[1:] > at[:-1]).all()) and 0 <= int(at[0]) and int(at[-1]) < n
    mask = torch.zeros(n)
    mask[at] = 1
    assert abs(mask.mean().item() - p) < 5 * (p * (1 - p) / n) ** 0.5  # within 5 sigma of p itself, not rounded
    pairs = (mask[1:] * mask[:-1]).mean().item()  # neighbours dropped together: p² if independent
    assert abs(pairs - p * p) < 5 * (p * p / n) ** 0.5
    runs = torch.diff(at) - 1  # kept elements between two dropped ones: geometric, mean (1 - p) / p
    assert abs(runs.double().mean().item() - (1 - p) / p) < 0.15
    assert abs((runs == 0).double().mean().item() - p) < 0.005
    assert dropout.positions(10, 0.5).numel() <= 10 and dropout.positions(1, 0.3).numel() <= 1
    assert dropout.positions(0, 0.3).numel() == 0


@pytest.mark.skipif(heap._glibc() is None, reason="the C library is not glibc")
def test_reusing_freed_memory_serves_large_tensors_from_the_heap():
    import ctypes

    import torch

    class Info(ctypes.Structure):  # glibc's struct mallinfo2
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]  # fmt: skip

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    with heap.reused(False) as took:
        assert not took
    with heap.reused() as took:
        assert took
        before = libc.mallinfo2().hblkhd  # bytes in blocks mapped on their own
        x = torch.ones(4096, 1024)  # 16 MiB: above glibc's starting threshold
        assert libc.mallinfo2().hblkhd == before and libc.mallinfo2().uordblks >= x.numel() * 4
        del x
    assert libc.mallinfo2().hblkhd == before


def test_a_run_with_every_switch_off_and_on_trains(tiny_base, records, tmp_path):
    losses = {}
    for on in (False, True):
        points = []
        switches = {"varlen": on, "fused_lora": on, "fast_dropout": on, "fused_mlp": on, "fused_norm": on,
                    "reuse_memory": on}  # fmt: skip
        result = run_finetune(cfg(tiny_base, **switches), records[:80], tmp_path / str(on), on_progress=points.append)
        assert result.status == "succeeded" and (result.adapter_dir / "adapter_model.safetensors").exists()
        losses[on] = [p["train_loss"] for p in points if p["train_loss"] is not None]
    assert len(losses[True]) == len(losses[False]) == 4
    assert abs(losses[True][0] - losses[False][0]) < 0.05  # the same start (dropout masks differ)


def test_fused_layers_with_dropout_give_the_same_gradients_under_activation_checkpointing(
    tiny_base, records, monkeypatch
):
    """Checkpointing reruns each layer's forward in backward: the dropout masks must be drawn again alike."""
    import torch
    from peft import LoraConfig, get_peft_model

    from training.engine import loss as loss_mod

    tok, model, _ = load_base(cfg(tiny_base))
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "down_proj"], init_lora_weights=False,
                                             lora_dropout=0.2))  # fmt: skip
    fused_lora.install(model)
    batch = data_mod.PaddingFreeCollator(None, tok.pad_token_id)(items(tok, records, 6))
    model.train()

    draws = []
    monkeypatch.setattr(fused_lora, "draw", lambda *a: draws.append(1) or draw(*a))

    def grads():
        model.zero_grad()
        draws.clear()
        torch.manual_seed(7)
        loss_mod.answer_loss(model, batch).backward()
        return [p.grad.clone() for p in model.parameters() if p.requires_grad]

    plain, drawn = grads(), len(draws)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    checkpointed = grads()
    assert len(draws) == 2 * drawn  # each layer's forward ran again in backward
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain, checkpointed, strict=True))


def test_bf16_work_on_cpu_comes_in_few_shapes_with_the_same_values(tiny_base, records, monkeypatch):
    """oneDNN (bf16 on CPU) builds and keeps kernels for every new shape, so there the batch's width is
    rounded up (a pad segment of its own, not counted), the output layer's chunks come from a small set of
    sizes, and each example's attention is padded to a multiple of attention.ROUND; none of it changes a
    value or a gradient of the real tokens. There the attention's backward runs in fp32 (faster at small
    head dims), with grouped-query heads too."""
    import torch
    import torch.nn.functional as F

    from training.engine import loss as loss_mod
    from training.engine import precision

    assert precision.row_multiple("bf16", "cpu") == 128
    assert precision.row_multiple("fp32", "cpu") == precision.row_multiple("bf16", "cuda") == 1
    tok, model, _ = load_base(cfg(tiny_base))
    batch = items(tok, records)
    real = sum(len(item["input_ids"]) for item in batch)
    collator = data_mod.PaddingFreeCollator(None, tok.pad_token_id, multiple=128)
    rounded, plain = collator(batch), data_mod.PaddingFreeCollator(None, tok.pad_token_id)(batch)
    width = rounded["input_ids"].shape[1]
    assert width % 128 == 0 and 0 <= width - real < 128 and collator.tokens == real
    assert (rounded["labels"][0, real:] == -100).all() and (rounded["position_ids"][0, real : real + 1] == 0).all()
    model.eval()
    with torch.no_grad():  # the pad segment is an example of its own: the real tokens' logits are unchanged
        alone = model(input_ids=plain["input_ids"], position_ids=plain["position_ids"]).logits[0]
        padded = model(input_ids=rounded["input_ids"], position_ids=rounded["position_ids"]).logits[0, :real]
    assert torch.allclose(alone, padded, atol=1e-5)
    # packing off: padded batches' widths come in multiples of 32 there, the extra columns masked out
    assert precision.row_multiple("bf16", "cpu", packed=False) == 32
    assert precision.row_multiple("fp32", "cpu", packed=False) == 1
    wide, tight = (
        data_mod.PaddingCollator(tok.pad_token_id, 32)(batch),
        data_mod.PaddingCollator(tok.pad_token_id)(batch),
    )
    assert wide["input_ids"].shape[1] % 32 == 0 and wide["input_ids"].shape[1] - tight["input_ids"].shape[1] < 32
    assert wide["attention_mask"].sum() == tight["attention_mask"].sum() == real
    assert (wide["labels"][:, tight["labels"].shape[1] :] == -100).all()
    with torch.no_grad():  # a padded batch through the varlen model (rows of one example): stock sdpa
        varlen_logits = model(input_ids=tight["input_ids"], attention_mask=tight["attention_mask"]).logits
    model.set_attn_implementation("sdpa")  # what the engine loads when packing is off
    with torch.no_grad():
        width = tight["input_ids"].shape[1]
        tight_logits = model(input_ids=tight["input_ids"], attention_mask=tight["attention_mask"]).logits
        wide_logits = model(input_ids=wide["input_ids"], attention_mask=wide["attention_mask"]).logits[:, :width]
    keep = tight["attention_mask"].bool()
    assert torch.allclose(tight_logits[keep], wide_logits[keep], atol=1e-5)
    assert torch.allclose(tight_logits[keep], varlen_logits[keep], atol=1e-5)

    for n in (0, 1, 63, 64, 65, 1023, 1024, 1100, 2048, 3000):
        sizes = [b - a for a, b in loss_mod.spans(n, 1024)]
        assert sum(sizes) == n and len(sizes) <= n // 1024 + 2
        assert all(s == 1024 or s % loss_mod.ALIGN == 0 or s < loss_mod.ALIGN for s in sizes)
    # in bf16 the head's last rows (under ALIGN) run padded with zero rows: one shape; values and gradients kept
    torch.manual_seed(0)
    h = torch.randn(1100, 32, dtype=torch.bfloat16)  # chunks of 1024, 64 and 12 rows
    w, t = torch.randn(50, 32, dtype=torch.bfloat16), torch.randint(0, 50, (1100,))
    rows_seen, linear = [], F.linear

    def head(few_shapes: bool):
        monkeypatch.setattr(precision, "per_shape_kernels", lambda *a: few_shapes)
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        total = loss_mod._head_loss().apply(hh, ww, None, t, 1024)
        total.backward()
        return [x.float() for x in (total.detach(), hh.grad, ww.grad)]

    monkeypatch.setattr(F, "linear", lambda x, *a: rows_seen.append(x.shape[0]) or linear(x, *a))
    padded, plain = head(True), head(False)
    monkeypatch.undo()
    assert rows_seen == [1024, 64, 64, 1024, 64, 12]
    assert all(torch.allclose(a, b, rtol=1e-2, atol=1e-3) for a, b in zip(padded, plain, strict=True))

    lengths, sdpa, flash16 = [], F.scaled_dot_product_attention, attention._flash16()
    monkeypatch.setattr(
        F, "scaled_dot_product_attention", lambda q, *a, **k: lengths.append(q.shape[2]) or sdpa(q, *a, **k)
    )
    monkeypatch.setattr(attention, "_flash16", lambda: type("Spy", (), {"apply": spy}))

    def spy(q, *rest):
        lengths.append(q.shape[2])
        return flash16.apply(q, *rest)

    def attend(q, k, v, weights, ours: bool):
        out = (
            attention._causal(q, k, v, 0.0, None, k.shape[1] != q.shape[1])
            if ours
            else sdpa(q, k, v, is_causal=True, enable_gqa=k.shape[1] != q.shape[1])
        )
        return out, torch.autograd.grad((out.float() * weights).sum(), (q, k, v))

    def error(a, b):
        return max((x.float() - y).norm().item() / y.norm().item() for x, y in zip(a, b, strict=True))

    for dtype, expected, kv_heads in ((torch.bfloat16, 64, 4), (torch.bfloat16, 64, 2), (torch.float32, 45, 4)):
        torch.manual_seed(0)
        q = torch.randn(1, 4, 45, 16, dtype=dtype, requires_grad=True)
        k, v = (torch.randn(1, kv_heads, 45, 16, dtype=dtype, requires_grad=True) for _ in range(2))
        wide = [x.detach().float().requires_grad_() for x in (q, k, v)]
        weights = torch.randn(1, 4, 45, 16)
        ours, grads = attend(q, k, v, weights, ours=True)
        assert lengths[-1] == expected  # 16-bit on CPU: padded to a multiple of ROUND
        stock, stock_grads = attend(q, k, v, weights, ours=False)
        exact, exact_grads = attend(*wide, weights, ours=False)
        assert ours.shape == stock.shape and ours.dtype == dtype and all(g.dtype == dtype for g in grads)
        if dtype == torch.float32:  # stock sdpa, untouched
            assert torch.allclose(ours, exact, atol=1e-6) and error(grads, exact_grads) < 1e-6
            continue
        # the 16-bit forward is stock's; its backward runs in fp32, so the gradients are at least as
        # close to the fp32 ones as stock 16-bit's (seen: ~0.3% against ~0.4% relative norm)
        assert torch.allclose(ours.float(), stock.float(), atol=2e-2) and error([ours], [exact]) < 1e-2
        assert error(grads, exact_grads) < 1e-2 and error(grads, exact_grads) <= error(stock_grads, exact_grads) * 1.1
