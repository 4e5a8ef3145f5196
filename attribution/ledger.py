"""The reward ledger as a Merkle tree: the bytes each ledger row commits to, and the root.

Anchoring recomputes roots from here and rewards writes them, so neither imports the other.
"""

from __future__ import annotations

import json

from attribution.models import RewardEntry, RewardEpoch
from datanets import merkle


def leaf(epoch_number: int, entry: RewardEntry) -> bytes:
    """The bytes a ledger leaf commits to: the row and its salt (rows from before salting have none,
    and their leaves, hence their anchored roots, are unchanged)."""
    data = {"epoch": epoch_number, "index": entry.index, "contributor": entry.contributor_id,
            "wallet": entry.wallet, "amount": entry.amount, "gross": entry.gross, "penalty": entry.penalty}  # fmt: skip
    if entry.salt:
        data["salt"] = entry.salt
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def leaf_hashes(epoch_number: int, entries) -> list[bytes]:
    return [merkle.leaf_hash(leaf(epoch_number, e)) for e in entries]


def ledger_root(epoch: RewardEpoch) -> str:
    """The epoch's root recomputed from its ledger rows as they are stored now."""
    return merkle.root(leaf_hashes(epoch.number, epoch.entries.order_by("index"))).hex()
