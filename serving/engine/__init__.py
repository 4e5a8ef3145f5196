"""The serving engine: plain Python (torch, transformers, peft), never Django."""

from serving.engine.adapters import AdapterCache, AdapterError
from serving.engine.engine import Event, GenerationError, GenerationParams, Request, ServingEngine

__all__ = ["AdapterCache", "AdapterError", "Event", "GenerationError", "GenerationParams", "Request",
           "ServingEngine"]  # fmt: skip
