"""Adding a base model (admin, staff page): check a Hugging Face id's format, or read a local
folder's config.json and weights to fill in architecture, size and context length. Nothing is
downloaded here: a Hub model is fetched by the training worker the first time a job uses it."""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from training.engine.config import TARGET_MODULES

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# A decoder like Llama's: these keys in config.json and a *ForCausalLM class (LoRA then targets all linear layers).
LLAMA_LIKE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


class BaseModelError(ValueError):
    """Why a base model cannot be added, for the staff member adding it; `field` names the form field."""

    def __init__(self, message: str, field: str = "source"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Inspection:
    """What the check learned; None where it cannot know without downloading (a Hub id)."""

    source: str
    is_local: bool
    architecture: str | None = None
    parameter_count: int | None = None
    context_length: int | None = None
    note: str = ""


def supported_architecture(config: dict) -> bool:
    model_type = config.get("model_type")
    if model_type in TARGET_MODULES:
        return True
    causal = any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or [])
    return causal and all(isinstance(config.get(k), int) for k in LLAMA_LIKE_KEYS)


def inspect(source: str) -> Inspection:
    """Check a base model source; raises BaseModelError with a plain reason."""
    source = (source or "").strip()
    if not source:
        raise BaseModelError("Give a Hugging Face id (owner/name) or the full path of a folder on the server.")
    if source.startswith("/"):
        return _inspect_folder(Path(source))
    if not HUB_ID.match(source):
        raise BaseModelError(
            f"“{source[:100]}” is neither a Hugging Face id like “Qwen/Qwen2.5-0.5B-Instruct” "
            "nor a full folder path starting with /."
        )
    note = "Not checked here: the training worker downloads it from Hugging Face the first time a job uses it."
    return Inspection(source=source, is_local=False, note=note)


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not folder.is_dir():
        raise BaseModelError(f"There is no folder {folder} on this server.")
    if not path.is_file():
        raise BaseModelError(f"The folder {folder} has no config.json, so it is not a Hugging Face model folder.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise BaseModelError(f"config.json in {folder} could not be read as JSON.") from None
    if not isinstance(config, dict):
        raise BaseModelError(f"config.json in {folder} is not a JSON object.")
    return config


def _inspect_folder(folder: Path) -> Inspection:
    config = _read_config(folder)
    model_type = str(config.get("model_type") or "unknown")[:40]
    if not supported_architecture(config):
        known = ", ".join(sorted(TARGET_MODULES))
        raise BaseModelError(
            f"The architecture “{model_type}” cannot be fine-tuned here. Supported: {known}, "
            "or a Llama-like causal language model.",
            "source",
        )
    context = next((config[k] for k in CONTEXT_KEYS if isinstance(config.get(k), int) and config[k] > 0), None)
    if context is None:
        raise BaseModelError("config.json does not say the model's context length (max_position_embeddings).")
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not weights:
        raise BaseModelError(f"The folder {folder} has no weights (*.safetensors or *.bin files).")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise BaseModelError(f"The folder {folder} has no tokenizer (tokenizer.json or tokenizer.model).")
    params = _count_parameters(weights) or _estimate_parameters(config)
    return Inspection(str(folder), True, model_type, params, min(context, 2**31 - 1))


def _count_parameters(files: list[Path]) -> int:
    """Exact count from safetensors headers (no weights loaded); 0 when the files are not safetensors."""
    total = 0
    for path in files:
        if path.suffix != ".safetensors":
            return 0
        try:
            with path.open("rb") as handle:
                (size,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(min(size, 100_000_000)))
        except (OSError, struct.error, ValueError):
            raise BaseModelError(f"The weights file {path.name} could not be read.") from None
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total


def _estimate_parameters(config: dict) -> int:
    hidden, layers = config.get("hidden_size") or 0, config.get("num_hidden_layers") or 0
    vocab, inner = config.get("vocab_size") or 0, config.get("intermediate_size") or 4 * hidden
    return int(vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * inner))
