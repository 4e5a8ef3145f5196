"""Staff add real base models from the admin; each is checked when it is saved."""

from __future__ import annotations

import json
import shutil

import pytest

from training import base_models
from training.models import BaseModel

pytestmark = pytest.mark.django_db

ADD = "/admin/training/basemodel/add/"
BERT = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "max_position_embeddings": 512}


def form(source: str, **extra) -> dict:
    data = {"name": "My model", "source": source, "description": "", "architecture": "", "parameter_count": "",
            "context_length": "", "chat_template": "", "licence": "apache-2.0", "methods": '["lora"]',
            "enabled": "on"}  # fmt: skip
    return {**data, **extra}


@pytest.fixture
def folder(tiny_base, tmp_path):
    """A copy of a tiny Llama built on the spot (training/engine/tiny.py), free to break."""
    return shutil.copytree(tiny_base, tmp_path / "model")


def errors_of(response) -> str:
    return " ".join(str(e) for e in response.context["adminform"].form.errors.values())


def test_a_valid_local_folder_is_saved_with_its_size_and_context_read_from_it(admin_client, folder):
    response = admin_client.post(ADD, form(str(folder), architecture="gpt2", context_length="7"), follow=True)
    assert response.status_code == 200
    model = BaseModel.objects.get(source=str(folder))
    config = json.loads((folder / "config.json").read_text())
    assert model.architecture == "llama" and model.context_length == config["max_position_embeddings"] == 1024
    assert 100_000 < model.parameter_count < 1_000_000  # counted from the safetensors header
    assert "Checked the folder: llama" in response.content.decode()


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda f: (f / "config.json").unlink(), "has no config.json"),
        (lambda f: (f / "config.json").write_text("{not json"), "could not be read as JSON"),
        (lambda f: (f / "config.json").write_text(json.dumps(BERT)), "architecture “bert” cannot be fine-tuned"),
        (lambda f: (f / "model.safetensors").unlink(), "has no weights"),
        (lambda f: (f / "tokenizer.json").unlink() or (f / "tokenizer_config.json").unlink(), "has no tokenizer"),
    ],
)  # fmt: skip
def test_a_broken_folder_is_refused_with_a_clear_error_and_nothing_saved(admin_client, folder, breakage, message):
    breakage(folder)
    response = admin_client.post(ADD, form(str(folder)))
    assert response.status_code == 200 and message in errors_of(response)
    assert not BaseModel.objects.exists()


def test_a_missing_folder_is_refused(admin_client, tmp_path):
    response = admin_client.post(ADD, form(str(tmp_path / "nowhere")))
    assert "There is no folder" in errors_of(response) and not BaseModel.objects.exists()


def test_a_llama_like_architecture_unknown_by_name_is_accepted(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "olmo2",
                                                    "architectures": ["Olmo2ForCausalLM"]}))  # fmt: skip
    assert base_models.inspect(str(folder)).architecture == "olmo2"


def test_a_hub_id_is_checked_for_form_only_and_left_to_the_worker(admin_client):
    data = form("Qwen/Qwen2.5-0.5B-Instruct", architecture="qwen2", parameter_count="494000000", context_length="32768")
    response = admin_client.post(ADD, data, follow=True)
    model = BaseModel.objects.get()
    assert (model.source, model.architecture, model.context_length) == ("Qwen/Qwen2.5-0.5B-Instruct", "qwen2", 32768)
    assert "downloads it from Hugging Face the first time" in response.content.decode()


@pytest.mark.parametrize("source", ["not a model", "relative/folder/too/deep", "../etc/passwd", "x" * 300])
def test_a_malformed_source_is_refused(admin_client, source):
    response = admin_client.post(ADD, form(source))
    assert response.status_code == 200 and errors_of(response) and not BaseModel.objects.exists()


def test_people_without_staff_rights_cannot_add_base_models(client, user, folder):
    client.force_login(user)
    response = client.post(ADD, form(str(folder)))
    assert response.status_code == 302 and not BaseModel.objects.exists()


def test_the_admin_form_saved_unchanged_changes_nothing(admin_client, folder):
    admin_client.post(ADD, form(str(folder), description="A small test model."))
    model = BaseModel.objects.get(source=str(folder))
    fields = ["name", "source", "description", "architecture", "parameter_count", "context_length", "chat_template",
              "licence", "methods", "builtin", "enabled"]  # fmt: skip
    before = BaseModel.objects.filter(pk=model.pk).values(*fields).get()
    page = admin_client.get(f"/admin/training/basemodel/{model.pk}/change/")
    shown = page.context["adminform"].form
    # Post back exactly what the form shows, as a person pressing Save without typing would.
    data = {name: shown[name].value() for name in shown.fields}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v not in (None, False)}
    response = admin_client.post(f"/admin/training/basemodel/{model.pk}/change/", data, follow=True)
    assert response.status_code == 200 and not getattr(response.context.get("adminform"), "form", None)
    assert BaseModel.objects.filter(pk=model.pk).values(*fields).get() == before
