"""Tiny Llama-architecture base models with a tokenizer trained on given texts.

Written as an ordinary Hugging Face folder (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json with a chat template), so it loads through
the same `from_pretrained` code as any hub id. Used by `make run`'s seed and by
tests: the whole flow runs offline on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
        unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )


def llama_config(tokenizer, *, hidden: int, layers: int, heads: int, context: int = 1024, intermediate: int = 0):
    """A Llama config sized by hand, with the tokenizer's special token ids (tied embeddings)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def save_model(model, tokenizer, folder: str | Path) -> Path:
    """An ordinary Hugging Face folder: config.json, model.safetensors, tokenizer files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_model(
    folder: str | Path,
    texts: Iterable[str],
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab_size: int = 1024,
    context: int = 1024,
    seed: int = 0,
) -> Path:
    """Write a random-init tiny Llama and its tokenizer to `folder`; returns the folder."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = train_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(tokenizer, hidden=hidden, layers=layers, heads=heads, context=context))
    return save_model(model, tokenizer, folder)


def record_texts(schema: str, records: Iterable[dict]) -> Iterable[str]:
    """The text of records, for training a tokenizer on them."""
    for record in records:
        if schema == "text":
            yield record["text"]
        elif schema == "instruction":
            yield f"{record['instruction']}\n{record.get('input', '')}\n{record['output']}"
        else:
            yield "\n".join(m["content"] for m in record["messages"])
