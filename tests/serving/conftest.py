from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from accounts.services import create_api_key
from datanets.demo_data import demo_records
from tests.conftest import ARTIFACTS, BASE_DIR, child_env, stop, wait_until
from training.models import BaseModel, TrainingJob


@pytest.fixture(scope="session")
def serving_base(tmp_path_factory) -> str:
    from training.engine.tiny import build_tiny_model, record_texts

    folder = tmp_path_factory.mktemp("serve") / "base"
    return str(build_tiny_model(folder, record_texts("instruction", demo_records())))


@pytest.fixture(scope="session")
def make_adapters(serving_base, tmp_path_factory):
    """Random-init LoRA adapters (so each changes the output), saved as PEFT folders."""
    made: dict[int, list[str]] = {}

    def make(n: int, rank: int = 8) -> list[str]:
        if (n, rank) in made:
            return made[(n, rank)]
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        folders = []
        for i in range(n):
            torch.manual_seed(1000 + i)
            model = AutoModelForCausalLM.from_pretrained(serving_base)
            lora = LoraConfig(r=rank, lora_alpha=rank * 4, target_modules=["q_proj", "v_proj", "up_proj"],
                              init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
            folder = tmp_path_factory.mktemp(f"adapter-{rank}-{i}")
            get_peft_model(model, lora).save_pretrained(folder)
            folders.append(str(folder))
        made[(n, rank)] = folders
        return folders

    return make


@pytest.fixture(scope="session")
def serving_worker(django_db_setup, django_db_blocker):
    log = open(ARTIFACTS / "serving-worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "serving.worker"], cwd=BASE_DIR, env=child_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    wait_until(lambda: "serving worker ready" in (ARTIFACTS / "serving-worker.log").read_text(), timeout=60)
    yield proc
    stop(proc)


@pytest.fixture
def model_setup(user, serving_base, make_adapters):
    (adapter,) = make_adapters(1)
    base = BaseModel.objects.create(name="Tiny", source=serving_base, methods=["lora"], context_length=1024)
    job = TrainingJob.objects.create(owner=user, name="Glossary tutor", base_model=base, config={}, status="succeeded",
                                     request_key=uuid.uuid4().hex, adapter_dir=adapter)  # fmt: skip
    _, key = create_api_key(user, "tests")
    return job, key
