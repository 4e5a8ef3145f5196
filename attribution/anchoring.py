"""Anchoring Datanet version roots and reward-epoch roots on an EVM chain.

An Anchor row is created in the same transaction as the root it anchors (PENDING),
and a Celery task sends it. The signed transaction is saved on the row before it is
broadcast, so a retry after a crash or a chain outage rebroadcasts the same
transaction (same hash) instead of sending a second one; a mined receipt moves the
row to ANCHORED with its hash and block. Verification recomputes the root from the
database as it is now and compares it with the stored root and the chain's copy.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from attribution.distribution import chain, publish, published_root
from attribution.ledger import ledger_root
from attribution.models import Anchor, RewardEpoch
from core.memo import remembered, verify_seconds
from core.queue import enqueue_task
from datanets import merkle
from datanets.models import Contribution, DatanetVersion, LogEntry
from datanets.services import leaf_data

log = logging.getLogger(__name__)


def _create(**fields) -> Anchor:
    anchor, created = Anchor.objects.get_or_create(kind=fields.pop("kind"), ref=fields.pop("ref"), defaults=fields)
    if created:
        schedule(anchor.pk)
    return anchor


def anchor_version(version: DatanetVersion) -> Anchor:
    ref = f"datanet:{version.datanet_id}:v{version.number}"
    return _create(kind=Anchor.Kind.DATANET_VERSION, ref=ref, version=version, root=version.root)


def anchor_epoch(epoch: RewardEpoch) -> Anchor:
    return _create(kind=Anchor.Kind.REWARD_EPOCH, ref=f"epoch:{epoch.number}", epoch=epoch, root=epoch.root)


def schedule(anchor_id: int, countdown: int = 0) -> None:
    """Send the anchor once the surrounding transaction commits (its row must be visible)."""
    enqueue_task("attribution.anchor", anchor_id, countdown=countdown)


def attempt(anchor_id: int) -> Anchor:
    """One try at getting an anchor on chain; raises ChainError (the caller retries) or returns the row."""
    from attribution.engine.chain import ChainError, PreparedTx, Receipt

    anchor = Anchor.objects.filter(pk=anchor_id).first()
    if anchor is None or anchor.status == Anchor.Status.ANCHORED:
        return anchor
    previous = None
    if anchor.raw_tx:
        previous = PreparedTx(tx_hash=anchor.tx_hash, raw=anchor.raw_tx, nonce=anchor.nonce, sender=anchor.sender)

    def save(tx) -> None:  # before broadcast: a crash after sending still knows the hash
        Anchor.objects.filter(pk=anchor.pk).update(tx_hash=tx.tx_hash, raw_tx=tx.raw, nonce=tx.nonce, sender=tx.sender)

    Anchor.objects.filter(pk=anchor.pk).update(attempts=anchor.attempts + 1)
    try:
        client = chain()
        if _paid_on_chain(anchor):  # the distributor's publish is the anchor: it holds the root for claims
            receipt = Receipt(*publish(anchor), status=1)
        else:
            receipt = client.submit(anchor.kind, anchor.ref, anchor.root, previous, save, wait=5.0)
    except ChainError as exc:
        Anchor.objects.filter(pk=anchor.pk).update(last_error=str(exc)[:2000])
        raise
    if receipt is None:
        Anchor.objects.filter(pk=anchor.pk).update(last_error="Sent; waiting to be mined.")
        raise ChainError("The anchoring transaction is not mined yet.")
    Anchor.objects.filter(pk=anchor.pk).update(
        status=Anchor.Status.ANCHORED, block_number=receipt.block_number, tx_hash=receipt.tx_hash,
        chain_id=client.chain_id, anchored_at=timezone.now(), last_error="",
    )  # fmt: skip
    anchor.refresh_from_db()
    return anchor


def _paid_on_chain(anchor: Anchor) -> bool:
    return anchor.kind == Anchor.Kind.REWARD_EPOCH and anchor.epoch.leaf_scheme == "keccak"


def recompute_root(anchor: Anchor) -> str:
    """The root as the database holds it now (records re-hashed from their stored content)."""
    if anchor.kind == Anchor.Kind.REWARD_EPOCH:
        return ledger_root(anchor.epoch)
    version = anchor.version
    if version is None:
        return ""  # the Datanet was deleted; the chain keeps the old root
    ids = LogEntry.objects.filter(datanet_id=version.datanet_id, index__lt=version.size).order_by("index")
    contents = dict(Contribution.objects.filter(log_entry__in=ids).values_list("pk", "content"))
    leaves = [merkle.leaf_hash(leaf_data(contents[pk])) for pk in ids.values_list("contribution_id", flat=True)]
    return merkle.root(leaves).hex()


def checked(anchor: Anchor) -> dict:
    """verify(anchor), reused for a minute per anchor state: anyone may ask, and it reads the chain."""
    key = f"verify:anchor:{anchor.pk}:{anchor.status}:{anchor.tx_hash}"
    return remembered(key, verify_seconds(), lambda: verify(anchor))


def verify(anchor: Anchor) -> dict:
    """Database root vs stored root vs the chain's copy; `ok` only when all three agree."""
    from attribution.engine.chain import ChainError

    recomputed = recompute_root(anchor)
    result = {
        "anchor": anchor.pk, "kind": anchor.kind, "ref": anchor.ref, "status": anchor.status,
        "stored_root": anchor.root, "recomputed_root": recomputed, "chain_root": None,
        "tx_hash": anchor.tx_hash or None, "block_number": anchor.block_number, "chain_id": anchor.chain_id,
        "problems": [],
    }  # fmt: skip
    if recomputed != anchor.root:
        result["problems"].append("The records in the database no longer hash to the anchored root: a row was changed.")
    if anchor.status != Anchor.Status.ANCHORED:
        result["problems"].append("Not anchored yet: the transaction is pending and will be retried.")
    else:
        try:
            found = _chain_copy(anchor)
        except ChainError as exc:
            result["problems"].append(f"The chain could not be read: {exc}")
        else:
            if found is None:
                result["problems"].append("The chain has no anchoring transaction with this hash.")
            else:
                result["chain_root"] = found[0]
                if found != (anchor.root, anchor.ref):
                    result["problems"].append("The chain holds a different root for this reference.")
    result["ok"] = not result["problems"]
    return result


def _chain_copy(anchor: Anchor) -> tuple[str, str] | None:
    """(root, ref) as the chain holds them: the distributor's root for an epoch paid on chain, else the data
    transaction's payload."""
    if _paid_on_chain(anchor):
        root = published_root(anchor.epoch.number)
        return (root, anchor.ref) if root is not None else None
    record = chain().read(anchor.tx_hash)
    return (record.root, record.ref) if record is not None else None
