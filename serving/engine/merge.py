"""Merge a LoRA adapter into its base: full weights, tokenizer and model card in one zip."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path


def merge_to_zip(base_source: str, adapter_path: str | Path, out: Path) -> Path:
    """Write `out` (a zip) atomically: a half-written archive is never left under its name."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = AutoModelForCausalLM.from_pretrained(base_source, dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload()
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(base_source).save_pretrained(tmp)
        card = Path(adapter_path) / "README.md"
        if card.exists():
            shutil.copy(card, Path(tmp) / "README.md")
        partial = out.with_suffix(".part")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(tmp).iterdir()):
                archive.write(path, path.name)
        partial.replace(out)
    return out
