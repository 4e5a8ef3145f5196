"""Faults injected into test workers' pool processes, switched on per base model.

A tiny base model whose config.json carries `mf_test_oom` makes every forward pass
raise torch.cuda.OutOfMemoryError; `mf_test_enospc_after` makes checkpoint saves
after that step fail with ENOSPC (a full disk). Everything else is the real code.
"""

from __future__ import annotations

import errno
import functools

_installed = False


def install(**kwargs) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    import torch
    from transformers import LlamaForCausalLM, LlamaModel, Trainer

    forward = LlamaForCausalLM.forward

    @functools.wraps(forward)  # keep the signature: the Trainer reads label names from it
    def maybe_oom(self, *args, **kw):
        if getattr(self.config, "mf_test_oom", False):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected by the test)")
        return forward(self, *args, **kw)

    LlamaForCausalLM.forward = maybe_oom
    decoder = LlamaModel.forward  # the answer-only loss runs the decoder without the LM's forward

    @functools.wraps(decoder)
    def decoder_oom(self, *args, **kw):
        if getattr(self.config, "mf_test_oom", False):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected by the test)")
        return decoder(self, *args, **kw)

    LlamaModel.forward = decoder_oom
    save = Trainer._save_checkpoint

    @functools.wraps(save)
    def maybe_full(self, model, trial, *args, **kw):
        limit = getattr(self.model.base_model.model.config, "mf_test_enospc_after", None)
        if limit is not None and self.state.global_step > limit:
            raise OSError(errno.ENOSPC, "No space left on device (injected by the test)")
        return save(self, model, trial, *args, **kw)

    Trainer._save_checkpoint = maybe_full
