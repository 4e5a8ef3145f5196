"""Pay reward epochs on chain: an ERC-20 reward token and a Merkle distributor (Django-free).

The contracts are Vyper sources in ``contracts/`` (``RewardToken.vy``, ``MerkleDistributor.vy``),
compiled from source in-process by vyper's Python API, for the Cancun EVM (the newest rules most
EVM chains run; Vyper 0.4.3 uses MCOPY and transient storage from it, nothing from Prague).

How an epoch is paid
--------------------
The owner (the distributor's deployer) closes an epoch with ``publish_epoch``: it approves the
distributor on the token for the epoch's total, then ``publish(epoch, root, total)`` stores the root
and pulls the total into the distributor in the same transaction. Anyone may then send
``claim(epoch, index, account, amount, salt, proof)`` (a relayer may pay the gas); the tokens go to
``account``, once per (epoch, index), and never more than the epoch was funded with.

Leaf and tree encoding (the ledger's encoding: changing it changes every root)
--------------------------------------------------------------------------------
A row is ``(epoch uint256, index uint256, account address, amount uint256, salt bytes32)``::

    leaf = keccak256(keccak256(abi.encode(epoch, index, account, amount, salt)))

``abi.encode`` is the standard (non-packed) ABI encoding: five 32-byte words, the address left-padded
with zeros. ``index`` numbers the epoch's rows 0..n-1 and must be unique within the epoch: the contract
marks (epoch, index) as claimed. ``amount`` is in the token's smallest unit (18 decimals). ``salt`` is
32 random bytes per row (``new_salt()``); without it, a person's amount could be recovered by hashing
guesses against the sibling hashes that appear in another person's proof.

An inner node is ``keccak256(min(a, b) ++ max(a, b))`` (the two 32-byte children, compared as
unsigned big-endian integers, smaller first), so a proof is just the list of siblings from the leaf up,
with no left/right flags. The tree has OpenZeppelin StandardMerkleTree's shape: the leaf hashes are
sorted ascending, stored in reverse order at the end of an array of ``2n - 1`` nodes, and node ``i``
is the hash of nodes ``2i + 1`` and ``2i + 2``; node 0 is the root. So a root does not depend on the
order of the rows, and ``StandardMerkleTree.of(rows, ["uint256", "uint256", "address", "uint256",
"bytes32"]).root`` from ``@openzeppelin/merkle-tree`` gives the same root, and the same proofs. A tree
of one leaf has that leaf as its root and an empty proof. Proofs are at most 64 hashes long.

Senders
-------
A sender is either an address the node signs for (eth-tester and dev nodes: unlocked accounts) or an
``eth_account`` ``LocalAccount`` (real chains: signed here, sent raw). A contract revert raises
``ContractReverted`` whose ``reason`` is the contract's words ("already claimed", "invalid proof"...).
Nodes that return the revert data (geth, eth-tester in-process) give the reason; the devchain
(``attribution.devchain``) answers reverts without it, so there the reason reads "reverted without a
reason". Views are called from DEV_PRIVATE_KEY's address, because eth-tester refuses an ``eth_call``
whose sender cannot pay for its gas.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

from attribution.engine.chain import ChainError, ChainUnavailable, keep_recursion_limit

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
EVM_VERSION = "cancun"
LEAF_TYPES = ["uint256", "uint256", "address", "uint256", "bytes32"]
MAX_PROOF = 64  # MerkleDistributor.vy's MAX_PROOF: room for 2**64 rows
RECEIPT_TIMEOUT = 120.0  # seconds to wait for a sent transaction to be mined
# DEV_PRIVATE_KEY's address, funded on eth-tester and the devchain; real nodes take any sender for a view.
_VIEW_CALLER = {"from": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"}
_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string): how Vyper's `assert x, "reason"` reverts
_NO_GAS_MONEY = ("insufficient funds", "cannot afford")  # geth's and eth-tester's words

Sender = str | LocalAccount


class DistributorError(ChainError):
    """Paying rewards on chain failed, with a message a person understands."""


class ContractReverted(DistributorError):
    """A contract refused the call; ``reason`` is its revert message, e.g. "already claimed"."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The contract refused: {reason}.")
        self.reason = reason


class Compiled(NamedTuple):
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-hex deployment bytecode


@dataclass(frozen=True)
class Addresses:
    token: str
    distributor: str


# --- compiling ---

_compiled: dict[str, Compiled] = {}  # sha256 of (EVM version, source) -> output
_compile_lock = threading.Lock()


def compile_contracts(directory: Path = CONTRACTS_DIR) -> dict[str, Compiled]:
    """Every ``*.vy`` in `directory` by file stem, compiled from source (cached by source hash)."""
    return {path.stem: compile_source(path.read_text(), path.name) for path in sorted(directory.glob("*.vy"))}


def compile_source(source: str, name: str = "contract.vy") -> Compiled:
    key = hashlib.sha256(f"{EVM_VERSION}\0{source}".encode()).hexdigest()
    with _compile_lock:
        if key not in _compiled:
            # Lazy: importing vyper takes a while and only chain work needs it.
            from vyper.compiler import compile_code
            from vyper.compiler.settings import Settings

            out = compile_code(
                source,
                contract_path=name,
                output_formats=["abi", "bytecode"],
                settings=Settings(evm_version=EVM_VERSION),
            )
            _compiled[key] = Compiled(abi=out["abi"], bytecode=out["bytecode"])
        return _compiled[key]


# --- leaves and trees ---


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def _bytes32(value: bytes | str, what: str) -> bytes:
    data = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(data) != 32:
        # eth_abi would right-pad a short value silently, giving a different leaf than intended.
        raise ValueError(f"A {what} must be exactly 32 bytes, not {len(data)}.")
    return data


def leaf_hash(epoch: int, index: int, account: str, amount: int, salt: bytes | str) -> bytes:
    """The 32-byte leaf of one row (see the module docstring)."""
    encoded = abi_encode(LEAF_TYPES, [epoch, index, to_checksum_address(account), amount, _bytes32(salt, "salt")])
    return keccak(keccak(encoded))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a <= b else keccak(b + a)


def _tree(leaves: Sequence[bytes]) -> list[bytes]:
    """All 2n-1 nodes, root first, in OpenZeppelin's layout (node i's children are 2i+1, 2i+2)."""
    if not leaves:
        raise ValueError("A Merkle tree needs at least one leaf.")
    ordered = sorted(_bytes32(leaf, "leaf") for leaf in leaves)
    n = len(ordered)
    tree = [b""] * (n - 1) + ordered[::-1]
    for i in range(n - 2, -1, -1):
        tree[i] = _hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def _proof(tree: list[bytes], node: int) -> list[bytes]:
    proof = []
    while node > 0:
        proof.append(tree[node + 1 if node % 2 else node - 1])
        node = (node - 1) // 2
    return proof


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    return _tree(leaves)[0]


def merkle_proofs(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """The proof of every leaf, in the order given (one tree build for all)."""
    tree = _tree(leaves)
    first_node = {}
    for node in range(len(tree) - 1, len(leaves) - 2, -1):
        first_node.setdefault(tree[node], node)
    return [_proof(tree, first_node[bytes(leaf)]) for leaf in leaves]


def merkle_proof(leaves: Sequence[bytes], i: int) -> list[bytes]:
    """The proof of ``leaves[i]``; for many proofs of one tree use ``merkle_proofs``."""
    tree = _tree(leaves)
    return _proof(tree, tree.index(bytes(leaves[i]), len(leaves) - 1))


def verify(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """What the distributor checks: hashing the leaf up through the proof gives the root."""
    node = bytes(leaf)
    for sibling in proof:
        node = _hash_pair(node, bytes(sibling))
    return node == bytes(root) and len(proof) <= MAX_PROOF


# --- reverts ---


def revert_reason(exc: BaseException) -> str | None:
    """The plain reason of a contract revert as web3 or eth-tester report it; None if `exc` is not one."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x" + _ERROR_SELECTOR.hex()):
        try:
            return abi_decode(["string"], bytes.fromhex(data[10:]))[0]
        except (ValueError, DecodingError):  # malformed revert data: fall back to the message
            pass
    message = getattr(exc, "message", None) or (str(exc.args[0]) if exc.args else "")
    if "execution reverted" not in message:
        return None
    reason = message.split("execution reverted", 1)[1].lstrip(": ").strip()
    return reason or "reverted without a reason"


def _refusals() -> tuple[type[BaseException], ...]:
    # In-process eth-tester chains raise their own errors instead of returning RPC errors.
    with keep_recursion_limit():  # importing py-evm raises the process's recursion limit
        from eth_tester.exceptions import TransactionFailed, ValidationError

    return (ContractLogicError, Web3RPCError, TransactionFailed, ValidationError)


@contextmanager
def _contract_errors() -> Iterator[None]:
    """Contract reverts become ContractReverted, an unreachable node ChainUnavailable."""
    try:
        yield
    except (requests.RequestException, OSError) as exc:
        raise ChainUnavailable(f"The chain is not reachable: {exc}") from None
    except _refusals() as exc:
        reason = revert_reason(exc)
        if reason is not None:
            raise ContractReverted(reason) from None
        if any(words in str(exc).lower() for words in _NO_GAS_MONEY):
            raise DistributorError("The sending account has too little ETH to pay for the gas.") from None
        raise DistributorError(f"The chain refused the transaction: {exc}") from None


# --- sending ---


def _address(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else to_checksum_address(sender)


def _send(w3: Web3, sender: Sender, call: Any) -> Any:
    """Send a contract call or constructor from `sender` and wait for its receipt (raises on revert)."""
    address = _address(sender)
    with _contract_errors():
        if isinstance(sender, LocalAccount):
            nonce = w3.eth.get_transaction_count(address, "pending")
            tx = call.build_transaction({"from": address, "nonce": nonce, "chainId": w3.eth.chain_id})
            tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        else:
            tx_hash = call.transact({"from": address})
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    except TimeExhausted:
        raise DistributorError(
            f"Transaction {tx_hash.to_0x_hex()} was not mined within {RECEIPT_TIMEOUT:.0f} s."
        ) from None
    if receipt["status"] != 1:
        _explain_failure(call, address, receipt["blockNumber"])
    return receipt


def _explain_failure(call: Any, address: str, block: int) -> None:
    """A tx that passed its gas estimate but failed when mined (the state changed in between):
    replaying it on the state it was mined on usually gives the contract's reason."""
    if hasattr(call, "call"):
        with _contract_errors():
            call.call({"from": address}, block_identifier=block)
    raise DistributorError("The transaction failed on chain without a reason (out of gas?).")


def _contract(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=to_checksum_address(address), abi=compile_contracts()[name].abi)


def _token(w3: Web3, addresses: Addresses) -> Any:
    return _contract(w3, "RewardToken", addresses.token)


def _distributor(w3: Web3, addresses: Addresses) -> Any:
    return _contract(w3, "MerkleDistributor", addresses.distributor)


# --- the workflow ---


def deploy(w3: Web3, deployer: Sender, name: str = "ModelFactory Reward", symbol: str = "MFR") -> Addresses:
    """Deploy the token (`deployer` is its minter) and a distributor for it (`deployer` is its owner)."""
    compiled = compile_contracts()
    token, distributor = compiled["RewardToken"], compiled["MerkleDistributor"]
    token_receipt = _send(
        w3, deployer, w3.eth.contract(abi=token.abi, bytecode=token.bytecode).constructor(name, symbol)
    )
    factory = w3.eth.contract(abi=distributor.abi, bytecode=distributor.bytecode)
    distributor_receipt = _send(w3, deployer, factory.constructor(token_receipt["contractAddress"]))
    return Addresses(
        token=to_checksum_address(token_receipt["contractAddress"]),
        distributor=to_checksum_address(distributor_receipt["contractAddress"]),
    )


def mint(w3: Web3, addresses: Addresses, minter: Sender, to: str, amount: int) -> Any:
    return _send(w3, minter, _token(w3, addresses).functions.mint(to_checksum_address(to), amount))


def balance_of(w3: Web3, addresses: Addresses, account: str) -> int:
    with _contract_errors():
        return _token(w3, addresses).functions.balanceOf(to_checksum_address(account)).call(_VIEW_CALLER)


def epoch_root(w3: Web3, addresses: Addresses, epoch: int) -> bytes | None:
    """The root published for `epoch`, None if it is not published."""
    with _contract_errors():
        root = bytes(_distributor(w3, addresses).functions.roots(epoch).call(_VIEW_CALLER))
    return None if root == bytes(32) else root


def publish_epoch(w3: Web3, addresses: Addresses, owner: Sender, epoch: int, root: bytes, total: int) -> list[Any]:
    """Fund and publish an epoch (approve if needed, then publish); returns the receipts of what was sent.

    Idempotent: if the epoch is already on chain with this root and total, nothing is sent and the
    list is empty; with another root or total it raises DistributorError. After a crash between the
    approval and the publish, a retry finds the allowance in place and only publishes."""
    root = _bytes32(root, "root")
    distributor = _distributor(w3, addresses)
    published = epoch_root(w3, addresses, epoch)
    if published is not None:
        with _contract_errors():
            funded = distributor.functions.funded(epoch).call(_VIEW_CALLER)
        if (published, funded) != (root, total):
            raise DistributorError(
                f"Epoch {epoch} is already published with root 0x{published.hex()} and total {funded}, "
                f"not root 0x{root.hex()} and total {total}."
            )
        return []
    token, owner_address = _token(w3, addresses), _address(owner)
    receipts = []
    with _contract_errors():
        allowance = token.functions.allowance(owner_address, distributor.address).call(_VIEW_CALLER)
    if allowance < total:
        receipts.append(_send(w3, owner, token.functions.approve(distributor.address, total)))
    receipts.append(_send(w3, owner, distributor.functions.publish(epoch, root, total)))
    return receipts


def claim(
    w3: Web3,
    addresses: Addresses,
    sender: Sender,
    epoch: int,
    index: int,
    account: str,
    amount: int,
    salt: bytes | str,
    proof: Sequence[bytes],
) -> Any:
    """Claim one row for `account` (the tokens go to `account`, whoever `sender` is); returns the receipt."""
    if len(proof) > MAX_PROOF:
        raise ValueError(f"A proof has at most {MAX_PROOF} hashes, not {len(proof)}.")
    call = _distributor(w3, addresses).functions.claim(
        epoch, index, to_checksum_address(account), amount, _bytes32(salt, "salt"), [bytes(p) for p in proof]
    )
    return _send(w3, sender, call)


def claimed(w3: Web3, addresses: Addresses, epoch: int, index: int) -> bool:
    with _contract_errors():
        return bool(_distributor(w3, addresses).functions.is_claimed(epoch, index).call(_VIEW_CALLER))


def published_tx(w3: Web3, addresses: Addresses, epoch: int) -> tuple[str, int] | None:
    """(tx hash, block) of the epoch's Published event, None if it was never published."""
    with _contract_errors():
        logs = _distributor(w3, addresses).events.Published.get_logs(from_block=0, argument_filters={"epoch": epoch})
    return (logs[0]["transactionHash"].to_0x_hex(), int(logs[0]["blockNumber"])) if logs else None


def claim_data(addresses: Addresses, epoch: int, index: int, account: str, amount: int, salt, proof) -> str:
    """The calldata of claim(...), for a browser wallet or a script to send to the distributor itself."""
    args = [epoch, index, to_checksum_address(account), amount, _bytes32(salt, "salt"), [bytes(p) for p in proof]]
    return _distributor(Web3(), addresses).encode_abi("claim", args=args)
