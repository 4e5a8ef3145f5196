"""The reward ledger as a Merkle tree: the bytes each ledger row commits to, and the root.

Epochs paid on chain (leaf_scheme "keccak", every epoch closed since) use the distributor's leaves:
keccak256(keccak256(abi.encode(epoch, index, account, amount, salt))) in an OpenZeppelin
StandardMerkleTree (attribution/engine/distributor.py), so the contract verifies the same proofs. The
account is the wallet linked when the epoch closed; a row without one commits to the zero address,
which the contract never pays (its units are carried to the person's next epoch, see rewards.close_epoch).
Earlier epochs keep their JSON leaves in an RFC 9162 tree, so their anchored roots still verify.

Anchoring recomputes roots from here and rewards writes them, so neither imports the other.
"""

from __future__ import annotations

import json

from attribution.models import RewardEntry, RewardEpoch
from datanets import merkle

ZERO_ADDRESS = "0x" + "00" * 20


def payable(entry: RewardEntry) -> int:
    """What the row pays on chain: its amount when a wallet was linked at close, else nothing."""
    return entry.amount if entry.wallet else 0


def leaf(epoch_number: int, entry: RewardEntry) -> bytes:
    """The bytes a JSON ledger leaf commits to: the row and its salt (rows from before salting have none,
    and their leaves, hence their anchored roots, are unchanged)."""
    data = {"epoch": epoch_number, "index": entry.index, "contributor": entry.contributor_id,
            "wallet": entry.wallet, "amount": entry.amount, "gross": entry.gross, "penalty": entry.penalty}  # fmt: skip
    if entry.salt:
        data["salt"] = entry.salt
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def claim_fields(epoch_number: int, entry: RewardEntry) -> dict:
    """The fields of a keccak leaf, as the distributor's claim() takes them."""
    return {"epoch": epoch_number, "index": entry.index, "account": entry.wallet or ZERO_ADDRESS,
            "amount": entry.amount, "salt": "0x" + entry.salt}  # fmt: skip


def _engine():
    from attribution.engine import distributor  # web3 and eth-abi: loaded when a ledger is hashed

    return distributor


def leaf_hashes(epoch: RewardEpoch, entries) -> list[bytes]:
    if epoch.leaf_scheme == "json":
        return [merkle.leaf_hash(leaf(epoch.number, e)) for e in entries]
    return [_engine().leaf_hash(**claim_fields(epoch.number, e)) for e in entries]


def root_of(epoch: RewardEpoch, entries) -> str:
    hashes = leaf_hashes(epoch, entries)
    if epoch.leaf_scheme == "json":
        return merkle.root(hashes).hex()
    return _engine().merkle_root(hashes).hex() if hashes else merkle.root([]).hex()


def ledger_root(epoch: RewardEpoch) -> str:
    """The epoch's root recomputed from its ledger rows as they are stored now."""
    return root_of(epoch, epoch.entries.order_by("index"))


def proof(epoch: RewardEpoch, entry: RewardEntry) -> list[str]:
    hashes = leaf_hashes(epoch, epoch.entries.order_by("index"))
    if epoch.leaf_scheme == "json":
        return [p.hex() for p in merkle.inclusion_proof(entry.index, hashes)]
    return ["0x" + p.hex() for p in _engine().merkle_proof(hashes, entry.index)]
