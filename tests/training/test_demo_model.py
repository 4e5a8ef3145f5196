"""The built-in demo base model: built once by the same code `make run` uses, cached under
VAR_DIR, rebuilt only when its recipe or records change, registered as a labelled demo model,
and it speaks: greedy answers to glossary questions are the glossary's own words."""

from __future__ import annotations

import json

import pytest

from datanets.demo_data import demo_records
from training.engine.demo_model import MARKER, RECIPE, cached, recipe_key
from training.models import DEMO_SUMMARY, BaseModel
from training.seed import seed_base_model


def greedy(folder, question: str) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=48, do_sample=False)
    return tok.decode(out[0][prompt["input_ids"].shape[1] :], skip_special_tokens=True)


def test_the_demo_model_speaks_the_glossary(demo_model_folder):
    report = json.loads((demo_model_folder / MARKER).read_text())
    assert report["recipe"] == RECIPE and report["key"] == recipe_key(demo_records())
    assert 2_500_000 < report["parameters"] < 4_000_000 and report["records"] == 290
    assert report["final_loss"] < 0.5 < report["first_loss"] and report["answer_loss"] < 0.1
    assert greedy(demo_model_folder, "What is LoRA?").startswith("LoRA is a fine-tuning method that freezes")
    assert "learning rate rises from zero" in greedy(demo_model_folder, "What is warmup?")


def test_it_is_registered_once_labelled_and_never_rebuilt(demo_model, demo_model_folder, tmp_path, settings):
    weights = demo_model_folder / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    old = BaseModel.objects.create(name="Tiny demo Llama", source=str(tmp_path / "models" / "tiny-llama"),
                                   builtin=True)  # fmt: skip
    again = seed_base_model()
    assert again.pk == demo_model.pk and weights.stat().st_mtime_ns == built_at
    assert BaseModel.objects.filter(builtin=True, enabled=True).get() == again  # the random one is retired
    old.refresh_from_db()
    assert not old.enabled
    assert again.builtin and again.summary == DEMO_SUMMARY and "— small demo model" in again.choice_label
    assert 2_500_000 < again.parameter_count < 4_000_000 and again.architecture == "llama"


def test_a_folder_from_another_recipe_or_half_written_is_not_reused(tmp_path):
    records = demo_records()[:3]
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / MARKER).write_text(json.dumps({"key": recipe_key(records)}))
    assert cached(folder, records) is None  # no weights: half-written
    (folder / "model.safetensors").write_bytes(b"")
    assert cached(folder, records) == {"key": recipe_key(records)}
    assert cached(folder, demo_records()[:4]) is None  # other records, other key
    (folder / MARKER).write_text("not json")
    assert cached(folder, records) is None


@pytest.mark.parametrize("question", ["What is the capital of the planet Zorblax?", "Who won the 1998 World Cup?"])
def test_it_does_not_know_what_it_was_never_taught(demo_model_folder, question):
    answer = greedy(demo_model_folder, question)
    assert "Quillamere" not in answer and "France" not in answer
