"""The training loss on answer tokens only, in chunks (FinetuneConfig.answer_only_head).

A causal LM's forward computes logits for every position, (tokens × vocabulary) floats, and the loss
then ignores every position whose label is -100 (prompts, padding, boundaries). Here the decoder runs
as usual, the hidden states of the positions whose next token is an answer token are gathered, and the
output layer plus cross-entropy run on them in chunks of CHUNK rows, each recomputed in backward
(activation checkpointing), so at most one chunk's logits exist at a time. The saving grows with the
vocabulary (150k for current models) and with the share of prompt tokens. The value and the gradients
are the standard loss's (test).
"""

from __future__ import annotations

CHUNK = 1024
IGNORE = -100


def supported(model) -> bool:
    """Models whose logits are exactly the output layer applied to the decoder's last hidden state, in one
    process: a model wrapped for several (DistributedDataParallel) must run its own forward for gradients
    to be averaged, so multi-device runs use the standard loss for now."""
    if hasattr(model, "module"):
        return False
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = causal.config
    plain = not any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
    return plain and hasattr(causal, "get_decoder") and causal.get_output_embeddings() is not None


def answer_loss(model, inputs: dict, num_items_in_batch=None, chunk: int = CHUNK):
    """Mean cross-entropy over answer tokens (or their sum ÷ num_items_in_batch, as transformers does
    under gradient accumulation)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    body, head = causal.get_decoder(), causal.get_output_embeddings()
    labels = inputs["labels"]
    out = body(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
               position_ids=inputs.get("position_ids"), use_cache=False)  # fmt: skip
    hidden = out.last_hidden_state[:, :-1]
    targets = labels[:, 1:].to(hidden.device)
    keep = targets != IGNORE
    hidden, targets = hidden[keep], targets[keep]  # (N, H), (N,)

    def chunk_loss(h, y):
        return F.cross_entropy(head(h).float(), y, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk):
        total = total + checkpoint(chunk_loss, hidden[start : start + chunk], targets[start : start + chunk],
                                   use_reentrant=False)  # fmt: skip
    if num_items_in_batch is not None:
        return total / num_items_in_batch
    return total / max(targets.numel(), 1)


def trainer_class(base, enabled: bool):
    """`base` (transformers' Trainer) computing its training loss with answer_loss when `enabled`."""

    class EngineTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not enabled or return_outputs or not supported(model):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return answer_loss(model, inputs, num_items_in_batch)

    return EngineTrainer
