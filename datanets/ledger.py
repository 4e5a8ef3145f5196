"""The tamper-evident log of a Datanet: accepted records are leaves of an append-only
Merkle tree (RFC 9162); each version is the root of the first N leaves."""

from __future__ import annotations

import json

from django.db import transaction

from datanets import merkle
from datanets.errors import DatanetError
from datanets.models import Contribution, Datanet, DatanetVersion, LogEntry
from datanets.parsing import content_hash


def leaf_data(content: dict) -> bytes:
    """The bytes a log leaf commits to: the record's canonical JSON."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def append_to_log(datanet: Datanet, contributions: list[Contribution], by) -> DatanetVersion:
    """Append accepted records to the Merkle log and cut a new version (one per decision)."""
    with transaction.atomic():
        Datanet.objects.select_for_update().filter(pk=datanet.pk).first()  # one appender at a time
        start = LogEntry.objects.filter(datanet=datanet).count()
        entries = []
        for offset, row in enumerate(contributions):
            entries.append(
                LogEntry(datanet=datanet, index=start + offset, contribution=row,
                         leaf_hash=merkle.leaf_hash(leaf_data(row.content)).hex())
            )  # fmt: skip
            Contribution.objects.filter(pk=row.pk).update(log_index=start + offset)
        LogEntry.objects.bulk_create(entries)
        leaves = leaf_hashes(datanet)
        last = DatanetVersion.objects.filter(datanet=datanet).order_by("-number").first()
        return DatanetVersion.objects.create(
            datanet=datanet, number=(last.number + 1 if last else 1), size=len(leaves),
            root=merkle.root(leaves).hex(), created_by=by,
        )  # fmt: skip


def leaf_hashes(datanet: Datanet, size: int | None = None) -> list[bytes]:
    qs = LogEntry.objects.filter(datanet=datanet).order_by("index").values_list("leaf_hash", flat=True)
    if size is not None:
        qs = qs[:size]
    return [bytes.fromhex(h) for h in qs]


def inclusion(datanet: Datanet, contribution: Contribution, version: DatanetVersion) -> dict:
    if contribution.log_index is None or contribution.log_index >= version.size:
        raise DatanetError(f"Record #{contribution.pk} is not in version {version.number}.", 404)
    leaves = leaf_hashes(datanet, version.size)
    return {
        "version": version.number, "tree_size": version.size, "root": version.root,
        "leaf_index": contribution.log_index, "leaf_hash": leaves[contribution.log_index].hex(),
        "proof": [p.hex() for p in merkle.inclusion_proof(contribution.log_index, leaves)],
    }  # fmt: skip


def consistency(datanet: Datanet, old: DatanetVersion, new: DatanetVersion) -> dict:
    if old.size > new.size:
        raise DatanetError("The first version must be the older one.")
    leaves = leaf_hashes(datanet, new.size)
    proof = merkle.consistency_proof(old.size, leaves) if old.size else []
    return {
        "old": {"version": old.number, "tree_size": old.size, "root": old.root},
        "new": {"version": new.number, "tree_size": new.size, "root": new.root},
        "proof": [p.hex() for p in proof],
    }


def verify(datanet: Datanet) -> list[str]:
    """Recompute every leaf from the stored records and every version root; list what disagrees."""
    problems = []
    entries = LogEntry.objects.filter(datanet=datanet).select_related("contribution").order_by("index")
    leaves = []
    for entry in entries:
        recomputed = merkle.leaf_hash(leaf_data(entry.contribution.content))
        if (
            recomputed.hex() != entry.leaf_hash
            or content_hash(entry.contribution.content) != entry.contribution.content_hash
        ):
            problems.append(f"Record #{entry.contribution_id} (leaf {entry.index}) was changed after it was accepted.")
        leaves.append(recomputed)
    versions = list(DatanetVersion.objects.filter(datanet=datanet).order_by("number"))
    roots = merkle.roots_at(leaves, [v.size for v in versions])
    for version in versions:
        if version.size not in roots or roots[version.size].hex() != version.root:
            problems.append(f"Version {version.number} no longer matches its root {version.root[:16]}….")
    return problems
