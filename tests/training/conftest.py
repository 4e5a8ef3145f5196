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
