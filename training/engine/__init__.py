"""The training engine: plain Python (torch, transformers, peft), never Django.

Entry point: run_finetune(cfg, records, out_dir, on_progress, should_cancel).
"""

from training.engine.config import PRESETS, ConfigError, FinetuneConfig
from training.engine.train import EngineError, FinetuneResult, run_finetune

__all__ = ["PRESETS", "ConfigError", "EngineError", "FinetuneConfig", "FinetuneResult", "run_finetune"]
