"""Rewards paid on chain: the anchoring account, the reward token and the Merkle distributor.

- Where the contracts live: REWARD_TOKEN_ADDRESS / REWARD_DISTRIBUTOR_ADDRESS when set; on a dev
  chain (CHAIN_DEV_KEY_OK) they are deployed once and their addresses kept in
  VAR_DIR/chain/contracts.json (the dev chain's journal replays the deployment after a restart, so
  the addresses stay valid); on a real chain `manage.py deploy_rewards` deploys them.
- Publishing: a closed epoch's anchor is the distributor's publish(epoch, root, total), which stores
  the root and pulls the epoch's funds in one transaction. The anchoring account is the token's
  minter: it mints what the epoch pays first. Every step checks the chain first, so a retry after
  a crash or an outage sends nothing twice.
- Claims: relayed by the server (REWARD_RELAY_CLAIMS, on by default on a dev chain: the demo's
  contributors hold no ETH), or sent by the contributor's own wallet or script with `claim_payload`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
from pathlib import Path

from django.conf import settings

from attribution.ledger import claim_fields, proof
from attribution.models import Anchor, RewardEntry
from core.memo import remembered

log = logging.getLogger(__name__)
_chains: dict = {}
_deploy_lock = threading.Lock()

# The contract's refusals (its revert reasons), in words for the person claiming.
REFUSALS = {
    "already claimed": "This reward was already claimed: the tokens went to the wallet it names.",
    "invalid proof": "The chain refused the claim: this proof, account or amount is not in the epoch's published "
    "ledger.",
    "epoch not published": "This epoch is not on chain yet, so nothing can be claimed from it. Publishing is "
    "retried automatically; claim once the epoch shows “anchored”.",
    "epoch pool exhausted": "The chain refused the claim: this epoch's funds are already paid out.",
    "no account": "This row has no wallet: it was carried into the next epoch instead.",
}


class ClaimRefused(Exception):
    """A claim the page or API refuses, in words (status: the HTTP answer)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def chain():
    """The configured chain client (an in-process eth-tester chain when CHAIN_RPC_URL is unset)."""
    from attribution.engine.chain import DEV_PRIVATE_KEY, Chain, ChainError

    key = settings.CHAIN_PRIVATE_KEY or (DEV_PRIVATE_KEY if settings.CHAIN_DEV_KEY_OK else "")
    if not key:
        raise ChainError("Anchoring needs CHAIN_PRIVATE_KEY for the chain at CHAIN_RPC_URL.")
    cache_key = (settings.CHAIN_RPC_URL, key)
    if cache_key not in _chains:
        _chains[cache_key] = Chain(settings.CHAIN_RPC_URL or None, key, timeout=settings.CHAIN_TIMEOUT)
    return _chains[cache_key]


def _saved_file() -> Path:
    return Path(settings.VAR_DIR) / "chain" / "contracts.json"


def _has_code(client, address: str) -> bool:
    with client._rpc():
        return len(client.w3.eth.get_code(address)) > 0


def addresses(deploy_missing: bool | None = None):
    """The reward token and distributor on the configured chain (deployed here first on a dev chain)."""
    from attribution.engine import distributor
    from attribution.engine.chain import ChainError

    if settings.REWARD_TOKEN_ADDRESS and settings.REWARD_DISTRIBUTOR_ADDRESS:
        return distributor.Addresses(settings.REWARD_TOKEN_ADDRESS, settings.REWARD_DISTRIBUTOR_ADDRESS)
    client = chain()
    label = f"{client.label}#{client.chain_id}"
    saved = json.loads(_saved_file().read_text()) if _saved_file().exists() else {}
    if label in saved and _has_code(client, saved[label]["distributor"]):
        return distributor.Addresses(**saved[label])
    if not (settings.CHAIN_DEV_KEY_OK if deploy_missing is None else deploy_missing):
        raise ChainError(
            "The reward contracts are not deployed on this chain: run `python manage.py deploy_rewards`, "
            "or set REWARD_TOKEN_ADDRESS and REWARD_DISTRIBUTOR_ADDRESS."
        )
    _saved_file().parent.mkdir(parents=True, exist_ok=True)
    with _deploy_lock, open(_saved_file().with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # processes deploying at once: one deploys, the others find it
        saved = json.loads(_saved_file().read_text()) if _saved_file().exists() else {}
        if label in saved and _has_code(client, saved[label]["distributor"]):
            return distributor.Addresses(**saved[label])
        found = distributor.deploy(client.w3, client.account)
        saved[label] = {"token": found.token, "distributor": found.distributor}  # other chains' entries kept
        _saved_file().write_text(json.dumps(saved, indent=1))
        return found


def publish(anchor: Anchor) -> tuple[str, int]:
    """Fund and publish a closed epoch's root on the distributor; (tx hash, block). Idempotent."""
    from attribution.engine import distributor

    client, epoch = chain(), anchor.epoch
    found = addresses()
    done = distributor.published_tx(client.w3, found, epoch.number)
    if done is not None and distributor.epoch_root(client.w3, found, epoch.number).hex() != anchor.root:
        raise distributor.DistributorError(
            f"Epoch {epoch.number} is already published on this chain with another root: the database and the "
            "chain disagree (was one of them reset without the other?)."
        )
    if done is None:
        held = distributor.balance_of(client.w3, found, client.address)
        if held < epoch.funded:  # the anchoring account is the minter: the epoch's pay is minted for it
            distributor.mint(client.w3, found, client.account, client.address, epoch.funded - held)
        root = bytes.fromhex(anchor.root)
        distributor.publish_epoch(client.w3, found, client.account, epoch.number, root, epoch.funded)
        done = distributor.published_tx(client.w3, found, epoch.number)
    if done is None:
        raise distributor.DistributorError(f"Epoch {epoch.number} was published but its event is not found yet.")
    return done


def published_root(epoch_number: int) -> str | None:
    from attribution.engine import distributor

    root = distributor.epoch_root(chain().w3, addresses(deploy_missing=False), epoch_number)
    return root.hex() if root is not None else None


def claim_payload(entry: RewardEntry) -> dict | None:
    """Everything a wallet or a script needs to claim the row itself; None for rows not paid on chain."""
    from attribution.engine import distributor

    epoch = entry.epoch
    if epoch.leaf_scheme != "keccak" or not entry.wallet:
        return None
    fields = claim_fields(epoch.number, entry) | {"proof": proof(epoch, entry)}
    payload = {"fields": fields, "chain_id": None, "token": None, "distributor": None, "calldata": None,
               "abi": [f for f in distributor.compile_contracts()["MerkleDistributor"].abi
                       if f.get("name") in ("claim", "is_claimed")]}  # fmt: skip
    if settings.REWARD_TOKEN_ADDRESS or _saved_file().exists():
        try:
            found = addresses(deploy_missing=False)
        except Exception:  # noqa: BLE001 — the chain being down leaves the addresses unknown, not an error
            return payload
        payload.update(chain_id=chain().chain_id, token=found.token, distributor=found.distributor)
        proof_bytes = [bytes.fromhex(p[2:]) for p in fields["proof"]]
        args = (fields["epoch"], fields["index"], fields["account"], fields["amount"], fields["salt"], proof_bytes)
        payload["calldata"] = distributor.claim_data(found, *args)
    return payload


def claim_state(entry: RewardEntry) -> str:
    """claimed / unclaimed / not anchored / no wallet / off chain / unknown (the chain could not be read)."""
    from attribution.engine.chain import ChainError

    epoch = entry.epoch
    if epoch.leaf_scheme != "keccak":
        return "off chain"
    if not entry.wallet:
        return "no wallet"
    if entry.claim_tx:
        return "claimed"
    anchor = getattr(epoch, "anchor", None)
    if anchor is None or anchor.status != Anchor.Status.ANCHORED:
        return "not anchored"
    try:
        # A claim is for good, so "claimed" is kept for a day; "not yet" is asked of the chain each time.
        done = remembered(f"claimed:{epoch.number}:{entry.index}", 86400, lambda: _claimed_on_chain(entry) or None)
    except ChainError as exc:
        log.warning("claim state of epoch %s row %s unknown: %s", epoch.number, entry.index, exc)
        return "unknown"
    return "claimed" if done else "unclaimed"


def _claimed_on_chain(entry: RewardEntry) -> bool:
    from attribution.engine import distributor

    return distributor.claimed(chain().w3, addresses(deploy_missing=False), entry.epoch.number, entry.index)


def own_entry(user, epoch_number: int) -> RewardEntry | None:
    """The person's own row in an epoch (nobody else's: a claim never names another's row)."""
    rows = RewardEntry.objects.filter(contributor=user, epoch__number=epoch_number)
    return rows.select_related("epoch", "epoch__anchor").first()


def relay_claim(entry: RewardEntry) -> str:
    """Send the row's claim from the server's account (it pays the gas); the tx hash. Raises ClaimRefused."""
    from attribution.engine import distributor
    from attribution.engine.chain import ChainError

    if not settings.REWARD_RELAY_CLAIMS:
        raise ClaimRefused("This site does not send claims for you: claim from your wallet with the proof below.", 400)
    state = claim_state(entry)
    if state == "claimed":
        raise ClaimRefused(REFUSALS["already claimed"])
    if state in ("off chain", "no wallet", "not anchored"):
        raise ClaimRefused(state_words(entry, state))
    fields = claim_fields(entry.epoch.number, entry)
    client = chain()
    try:
        receipt = distributor.claim(client.w3, addresses(deploy_missing=False), client.account, **fields,
                                    proof=[bytes.fromhex(p[2:]) for p in proof(entry.epoch, entry)])  # fmt: skip
    except distributor.ContractReverted as exc:
        raise ClaimRefused(REFUSALS.get(exc.reason, f"The chain refused the claim: {exc.reason}.")) from None
    except ChainError as exc:
        raise ClaimRefused(f"The claim was not sent: {exc} Try again in a minute.", 503) from None
    tx_hash = receipt["transactionHash"].to_0x_hex()
    RewardEntry.objects.filter(pk=entry.pk).update(claim_tx=tx_hash)
    return tx_hash


def state_words(entry: RewardEntry, state: str) -> str:
    return {
        "off chain": f"Epoch {entry.epoch.number} closed before rewards were paid on chain: its ledger is anchored "
        "as data, and there is nothing to claim.",
        "no wallet": "No wallet was linked when this epoch closed, so this amount is carried into your next epoch. "
        "Link a wallet (Sign in with Ethereum, on your profile) to be paid then.",
        "not anchored": REFUSALS["epoch not published"],
        "claimed": f"Paid: {entry.amount:,} units went to {entry.wallet}.",
        "unclaimed": f"Ready to claim: {entry.amount:,} units to {entry.wallet}.",
        "unknown": "The chain could not be read just now, so whether this was claimed is unknown.",
    }[state]
