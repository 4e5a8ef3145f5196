from __future__ import annotations

import pytest

from datanets.demo_data import demo_records


@pytest.fixture(scope="session")
def records() -> list[dict]:
    return demo_records()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, records) -> str:
    """A tiny random Llama with a tokenizer trained on the demo records (built once)."""
    from training.engine.tiny import build_tiny_model, record_texts

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "base", record_texts("instruction", records)))


@pytest.fixture
def base_model(tiny_base, db):
    from training.models import BaseModel

    return BaseModel.objects.create(
        name="Tiny test Llama", source=tiny_base, architecture="llama", parameter_count=150_000,
        context_length=1024, methods=["lora", "dora", "qlora"], builtin=True,
    )  # fmt: skip


@pytest.fixture
def glossary(make_datanet, accepted, records):
    datanet = make_datanet(slug="glossary")
    accepted(datanet, records[:120])
    return datanet
