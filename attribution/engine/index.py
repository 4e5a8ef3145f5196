"""Building, updating and saving a Datanet's retrieval index: the entry point for indexing.

A sync opens the latest generation for writing (``DatanetIndex.writer(folder)``), embeds new records with
``default_embedder()``, ``upsert()``s and ``remove()``s records, and ``save()``s a new generation;
``StaleIndexError`` means another writer saved in between. ``read_generation()`` says which generation is live
without loading anything. The file layout, locking and costs are described in store.py; queries go through
attribution/engine/retrieve.py.

Plain Python: never imports Django, Celery or Channels; the model and index libraries are imported lazily.
"""

from __future__ import annotations

from attribution.engine.embed import DIM, Embedder, default_embedder, default_model_path
from attribution.engine.store import (
    HNSW_CONNECTIVITY,
    HNSW_EXPANSION_ADD,
    HNSW_EXPANSION_SEARCH,
    DatanetIndex,
    StaleIndexError,
    read_generation,
)
from attribution.engine.text import tokenize

__all__ = [
    "DIM",
    "HNSW_CONNECTIVITY",
    "HNSW_EXPANSION_ADD",
    "HNSW_EXPANSION_SEARCH",
    "DatanetIndex",
    "Embedder",
    "StaleIndexError",
    "default_embedder",
    "default_model_path",
    "read_generation",
    "tokenize",
]
