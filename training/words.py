"""Plain words for what a person reads about training: metric labels, rounded numbers, ETAs,
job states. One place, so the pages, the API and the model card say the same thing."""

from __future__ import annotations

import math

# Metric key → (label, decimals). None decimals: a small number shown with two significant digits.
METRICS = {
    "steps": ("Steps", 0),
    "step": ("Step", 0),
    "epoch": ("Epoch", 1),
    "train_loss": ("Training loss", 2),
    "eval_loss": ("Evaluation loss", 2),
    "learning_rate": ("Learning rate", None),
    "grad_norm": ("Gradient size", 2),
    "tokens_per_second": ("Tokens per second", 0),
}

STATUS_WORDS = {
    "queued": "Waiting",
    "running": "Training",
    "succeeded": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def number(value, decimals: int | None = 2) -> str:
    """1234.5 → "1,235" (0 decimals); 2.3141 → "2.31"; 0.00030001 → "0.0003" (decimals None)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    if decimals is None:
        if value == 0:
            return "0"
        text = f"{float(f'{value:.2g}'):.12f}".rstrip("0").rstrip(".")
        return text if abs(value) >= 1e-9 else f"{value:.1e}"
    return f"{value:,.{decimals}f}"


def metric_label(key: str) -> str:
    return METRICS.get(key, (key.replace("_", " ").capitalize(), 2))[0]


def metric_items(metrics: dict) -> list[tuple[str, str]]:
    """[("Training loss", "2.31"), ("Steps", "37")] for a metrics dict, in a stable order."""
    order = list(METRICS)
    keys = sorted(metrics or {}, key=lambda k: (order.index(k) if k in order else len(order), k))
    return [(metric_label(k), number(metrics[k], METRICS.get(k, ("", 2))[1])) for k in keys]


def duration(seconds) -> str:
    """About how long, in words: "under a minute", "about 3 minutes", "about 1.5 hours"."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 60:
        return f"about {max(int(round(seconds / 5) * 5), 5)} seconds"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {round(minutes)} minute{'s' if round(minutes) != 1 else ''}"
    return f"about {number(minutes / 60, 1)} hours"


def memory(gigabytes: float) -> str:
    if gigabytes < 0.1:
        return "less than 0.1 GB"
    return f"about {number(gigabytes, 1 if gigabytes < 10 else 0)} GB"
