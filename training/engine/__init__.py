"""The training engine: plain Python (torch, transformers, peft), never Django.

Entry point: run_finetune(cfg, records, out_dir, on_progress, should_cancel). The knobs, their
metadata and the presets live in training.engine.config.
"""

from training.engine.config import KNOBS, PRESETS, ConfigError, FinetuneConfig, Knob, Preset, config_from, knobs
from training.engine.train import EngineError, FinetuneResult, run_finetune

__all__ = [
    "KNOBS", "PRESETS", "ConfigError", "EngineError", "FinetuneConfig", "FinetuneResult", "Knob", "Preset",
    "config_from", "knobs", "run_finetune",
]  # fmt: skip
