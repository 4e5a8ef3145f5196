"""Incremental detokenisation: the text each new token adds, decoding only a few tokens per step (the way
vLLM and TGI do) instead of the whole answer again. Byte-level tokens can end mid-character: their text
waits until the character is complete, unless `final` says no more tokens will come."""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW = 6  # tokens of context decoded before the new ones, so merges and spaces come out as in a full decode


@dataclass
class Detokenizer:
    tokenizer: object
    ids: list[int] = field(default_factory=list)
    prefix: int = 0  # start of the context window
    read: int = 0  # tokens whose text has been given out

    def add(self, token: int, final: bool = False) -> str:
        """The text `token` completes (maybe ""), given what came before."""
        self.ids.append(token)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        now = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(now) > len(before) and (final or not now.endswith("\ufffd")):
            new = now[len(before) :]
            self.read = len(self.ids)
            self.prefix = max(0, self.read - WINDOW)
            return new
        return ""
