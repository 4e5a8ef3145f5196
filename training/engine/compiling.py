"""torch.compile for training (FinetuneConfig.compile), one decoder layer at a time.

Each decoder layer is compiled in place (`layer.compile()`), not the whole model: the model object and
its state dict keep their names (no `_orig_mod.` prefix), so checkpoints, resume and the saved adapter
are those of an uncompiled run, and the packed-sequence mask is still built by transformers outside the
compiled code. The layers share compiled graphs (their weights are graph inputs, not guards). Shapes
change from batch to batch (padding-free rows), so they are dynamic from the start rather than
recompiled per shape; a handful of recompiles remain (one row vs several, the first layer's input
not requiring grad).

On CPU, inductor generates C++ and needs a C++ compiler; without one the knob falls back to eager with
a log line rather than failing the job. Compiling costs tens of seconds up front (see the bench), which
a short job does not win back.
"""

from __future__ import annotations

import shutil


def compiler_missing(device_type: str) -> str | None:
    """Why compiling cannot work on this worker, or None when it can."""
    try:
        import torch._dynamo  # noqa: F401
        import torch._inductor  # noqa: F401
    except ImportError as exc:  # a torch build without the compiler stack
        return f"this torch build cannot compile ({exc})"
    if device_type == "cpu" and not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        return "no C++ compiler (c++, g++ or clang++) on this worker, which torch.compile needs on CPU"
    return None


def decoder_layers(model) -> list:
    """The repeated decoder blocks of a (possibly peft-wrapped) causal LM; empty when not found."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = causal.get_decoder() if hasattr(causal, "get_decoder") else None
    layers = getattr(decoder, "layers", None) or getattr(decoder, "h", None)
    return list(layers) if layers is not None else []


def compile_layers(model, say) -> int:
    """Compile each decoder layer of `model` in place; the count compiled (0 when it stays eager)."""
    import torch

    why = compiler_missing("cuda" if torch.cuda.is_available() else "cpu")  # the Trainer moves the model later
    layers = decoder_layers(model)
    if why is None and not layers:
        why = "the model's decoder layers were not found"
    if why:
        say(f"torch.compile is off for this run: {why}; training continues uncompiled")
        return 0
    for layer in layers:
        layer.compile(dynamic=True)
    say(f"torch.compile: {len(layers)} decoder layers compiled (the first steps include compiling)")
    return len(layers)
