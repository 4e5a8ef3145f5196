"""Incremental detokenisation gives, token by token, exactly the text a full decode gives (a character
split across byte-level tokens waits until it is whole), for any token sequence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.engine.detok import Detokenizer


@pytest.fixture(scope="module")
def tokenizer(serving_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(serving_base)


def check(tokenizer, ids: list[int]) -> None:
    detok, text = Detokenizer(tokenizer), ""
    for n, token in enumerate(ids, start=1):
        text += detok.add(token, final=n == len(ids))
        full = tokenizer.decode(ids[:n], skip_special_tokens=True)
        assert full.rstrip("\ufffd").startswith(text.rstrip("\ufffd")) or n == len(ids)
    assert text == tokenizer.decode(ids, skip_special_tokens=True)


def test_real_text_with_multibyte_characters(tokenizer):
    for sample in ["LoRA freezes the base model.", "Café — naïve: 日本語 and emoji 🙂 too", "  spaced  out\n\nlines"]:
        check(tokenizer, tokenizer.encode(sample, add_special_tokens=False))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_token_sequence(tokenizer, data):
    ids = data.draw(st.lists(st.integers(0, len(tokenizer) - 1), min_size=1, max_size=40))
    check(tokenizer, ids)
