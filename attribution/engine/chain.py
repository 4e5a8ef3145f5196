"""Anchor Merkle roots on an EVM chain through web3 (Django-free).

What goes on chain
------------------
A root is anchored by a *plain data transaction*: 0 value, from the anchoring account to itself,
whose ``data`` is a fixed, versioned, self-describing payload::

    b"MFA1"            4 bytes  magic: "ModelFactory Anchor", payload format version 1
    kind code          1 byte   1 = "datanet_version" (alias "datanet"): a Datanet version root,
                                2 = "reward_epoch" (alias "epoch"): a reward-epoch root
    root              32 bytes  the Merkle root
    ref               rest      utf-8 reference, e.g. "datanet:12:v3" or "epoch:4" (at most 200 bytes)

Why a data transaction and not a contract: there is nothing to compile, deploy or verify (no
Solidity compiler is available offline), calldata is the cheapest place to put 32 bytes
(~23k gas in all on Prague rules), and any explorer shows the input bytes, so a reader needs
only the tx hash and this layout. The alternative is an event-emitting contract (indexed roots,
``eth_getLogs`` queries by kind) at the price of a deployment and ABI to maintain. A new layout
gets a new magic ("MFA2"), so old anchors always stay readable.

Idempotency
-----------
``Chain.submit`` takes the caller's last saved ``PreparedTx`` and never sends a second, different
transaction for the same anchor unless the first can no longer be mined (its nonce was used by
another transaction). Every newly signed transaction is handed to ``save`` before it is broadcast,
so after a crash the caller always knows the hash of anything that may be on chain.

``rpc_url`` None/"" runs an in-process eth-tester chain (one per process, auto-mining); its first
account (``DEV_PRIVATE_KEY``) is funded, as it is on the devchain (``python -m attribution.devchain``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.exceptions import ValidationError as EthUtilsValidationError
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound, Web3Exception, Web3RPCError
from web3.providers import BaseProvider
from web3.providers.eth_tester import EthereumTesterProvider

MAGIC = b"MFA1"
# The names are Anchor.Kind's values, so read() gives back what the caller stored; short aliases also encode.
KINDS_BY_CODE: dict[int, str] = {1: "datanet_version", 2: "reward_epoch"}
KIND_CODES: dict[str, int] = {kind: code for code, kind in KINDS_BY_CODE.items()} | {"datanet": 1, "epoch": 2}
MAX_REF_BYTES = 200  # a ref is a short label; the cap keeps calldata (and its cost) bounded

# Private key 1: eth-tester's first account (0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf), funded at genesis.
DEV_PRIVATE_KEY = "0x" + "00" * 31 + "01"
DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei, when the node has no eth_maxPriorityFeePerGas
POLL_SECONDS = 0.1

# Node messages meaning "this exact tx is already in my pool": success for a rebroadcast.
_ALREADY_KNOWN = ("already known", "known transaction", "alreadyknown", "already imported", "already exists")
# Node messages meaning "this nonce has been used": the tx can never be mined.
_STALE_NONCE = (
    "nonce too low",
    "nonce is too low",
    "invalid transaction nonce",
    "oldnonce",
    "nonce has already been used",
)


class ChainError(Exception):
    """An anchoring failure, with a message a person understands."""


class ChainUnavailable(ChainError):
    """The RPC cannot be reached or does not answer in time: retry later."""


class ChainRejected(ChainError):
    """The node refused the transaction (insufficient funds, bad key, invalid tx)."""


@dataclass
class PreparedTx:
    tx_hash: str  # 0x-hex
    raw: str  # 0x-hex signed raw tx
    nonce: int
    sender: str


@dataclass
class Receipt:
    tx_hash: str
    block_number: int
    status: int  # 1 ok


@dataclass
class AnchorRecord:
    kind: str
    ref: str
    root: str  # 64 lowercase hex chars, no 0x
    tx_hash: str
    block_number: int
    sender: str


def normalize_root(root: str) -> str:
    """64 lowercase hex chars without 0x, or ValueError."""
    text = root.lower().removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"A root must be 32 bytes of hex (64 characters), not {root!r}.")
    return text


def encode_payload(kind: str, ref: str, root: str) -> bytes:
    if kind not in KIND_CODES:
        raise ValueError(f"Unknown anchor kind {kind!r}; expected one of {sorted(KIND_CODES)}.")
    ref_bytes = ref.encode("utf-8")
    if len(ref_bytes) > MAX_REF_BYTES:
        raise ValueError(f"An anchor ref is at most {MAX_REF_BYTES} bytes of utf-8.")
    return MAGIC + bytes([KIND_CODES[kind]]) + bytes.fromhex(normalize_root(root)) + ref_bytes


def decode_payload(data: bytes) -> tuple[str, str, str] | None:
    """(kind, ref, root) of one of our payloads, None for anything else."""
    data = bytes(data)
    if len(data) < 37 or not data.startswith(MAGIC) or data[4] not in KINDS_BY_CODE:
        return None
    try:
        ref = data[37:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return KINDS_BY_CODE[data[4]], ref, data[5:37].hex()


def intrinsic_gas(data: bytes) -> int:
    """Exact gas of a plain data tx to an EOA, under both pre-Prague and Prague (EIP-7623 floor) rules."""
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    standard = 21000 + 4 * zeros + 16 * nonzeros
    floor = 21000 + 10 * (zeros + 4 * nonzeros)
    return max(standard, floor)


class _LockedTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe; one lock serialises every request to the shared chain."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self._lock:
            return super().make_request(method, params)


_tester: _LockedTesterProvider | None = None
_tester_lock = threading.Lock()


@contextmanager
def keep_recursion_limit() -> Iterator[None]:
    """py-evm and py_ecc raise the process's recursion limit to 100,000 on import. In a web
    process that turns a deeply nested JSON upload from a RecursionError into a segfault of
    the C stack, so the limit goes back to what it was: plain data transactions never recurse."""
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def in_process_provider() -> EthereumTesterProvider:
    """The process-wide in-process chain (created on first use: building its genesis is slow)."""
    global _tester
    with _tester_lock:
        if _tester is None:
            with keep_recursion_limit():
                _tester = _LockedTesterProvider()
        return _tester


def _tester_errors() -> tuple[type[BaseException], ...]:
    # In-process, eth-tester raises its validation errors directly instead of returning RPC errors.
    with keep_recursion_limit():
        from eth_tester.exceptions import TransactionFailed, ValidationError

    return (ValidationError, TransactionFailed)


def _node_message(exc: BaseException) -> str:
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        error = exc.rpc_response.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    if isinstance(exc, Web3RPCError) and exc.message:
        return str(exc.message)
    return str(exc) or type(exc).__name__


def _has(message: str, needles: tuple[str, ...]) -> bool:
    lowered = message.lower().replace(" ", "")
    return any(needle.replace(" ", "") in lowered for needle in needles)


class Chain:
    """One anchoring account on one chain. Methods raise ChainUnavailable / ChainRejected."""

    def __init__(
        self,
        rpc_url: str | None = None,
        private_key: str | None = None,
        timeout: float = 10.0,
        *,
        provider: BaseProvider | None = None,  # a ready provider (tests, custom transports) instead of rpc_url
    ) -> None:
        self.rpc_url = rpc_url or ""
        self.timeout = timeout
        self._rejections: tuple[type[BaseException], ...] = (ValueError, Web3RPCError, EthUtilsValidationError)
        if provider is None and self.rpc_url:
            # No automatic retries: the caller retries the whole submit later, and a down chain must fail fast.
            provider = HTTPProvider(
                self.rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
            )
        if provider is None or isinstance(provider, EthereumTesterProvider):
            provider = provider or in_process_provider()
            self._rejections += _tester_errors()
        self.label = self.rpc_url or "in-process eth-tester chain"
        self.w3 = Web3(provider)
        self.account = self._load_key(private_key or DEV_PRIVATE_KEY)
        self.address: str = self.account.address
        self._chain_id: int | None = None

    @staticmethod
    def _load_key(private_key: str) -> LocalAccount:
        try:
            return Account.from_key(private_key)
        except (ValueError, TypeError) as exc:
            raise ChainRejected(f"The anchoring private key is not valid: {exc}") from None

    @contextmanager
    def _rpc(self) -> Iterator[None]:
        """Map transport failures to ChainUnavailable and node refusals to ChainRejected."""
        try:
            yield
        except (requests.RequestException, OSError) as exc:
            raise ChainUnavailable(f"The chain at {self.label} is not reachable: {exc}") from None
        except Web3RPCError as exc:
            raise ChainRejected(f"The chain at {self.label} refused: {_node_message(exc)}") from None
        except Web3Exception as exc:  # unparseable answers, e.g. the URL is not a JSON-RPC node
            raise ChainUnavailable(f"The chain at {self.label} gave an unusable answer: {exc}") from None
        except self._rejections as exc:
            raise ChainRejected(f"The chain at {self.label} refused: {_node_message(exc)}") from None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with self._rpc():
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    # --- preparing ---

    def prepare(self, kind: str, ref: str, root: str) -> PreparedTx:
        """Sign (but do not send) the anchoring tx for the next pending nonce."""
        data = encode_payload(kind, ref, root)
        tx: dict[str, Any] = {"chainId": self.chain_id, "to": self.address, "value": 0, "data": data}
        with self._rpc():
            tx["nonce"] = self.w3.eth.get_transaction_count(self.address, "pending")
            tx["gas"] = self._gas(tx)
            tx.update(self._fees())
        signed = self.account.sign_transaction(tx)
        return PreparedTx(
            tx_hash=signed.hash.to_0x_hex(),
            raw=signed.raw_transaction.to_0x_hex(),
            nonce=tx["nonce"],
            sender=self.address,
        )

    def _gas(self, tx: dict[str, Any]) -> int:
        # eth-tester's estimate ignores the Prague calldata floor, so never go below the exact intrinsic gas.
        estimate = self.w3.eth.estimate_gas({"from": self.address, "to": tx["to"], "value": 0, "data": tx["data"]})
        return max(int(estimate), intrinsic_gas(tx["data"]))

    def _fees(self) -> dict[str, int]:
        """EIP-1559 fields when the latest block has a base fee, else a legacy gasPrice."""
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        try:
            priority = int(self.w3.eth.max_priority_fee)
        except (Web3RPCError, ValueError):  # older nodes lack eth_maxPriorityFeePerGas
            priority = DEFAULT_PRIORITY_FEE
        # 2x base fee survives six full blocks of base-fee growth before the tx stops being includable.
        return {"type": 2, "maxPriorityFeePerGas": priority, "maxFeePerGas": 2 * int(base_fee) + priority}

    # --- submitting ---

    def submit(
        self,
        kind: str,
        ref: str,
        root: str,
        previous: PreparedTx | None,
        save: Callable[[PreparedTx], None],
        wait: float = 5.0,
    ) -> Receipt | None:
        """Idempotent anchoring.

        If `previous` is mined, return its receipt without sending anything; if it is known but
        unmined (or was saved but never sent), broadcast the same raw tx again ('already known' is
        success); if its nonce was taken by another tx, prepare a new one. Every newly prepared tx is
        passed to `save` BEFORE it is broadcast. Returns the receipt, or None if not mined within
        `wait` seconds (the caller retries later with what it saved).
        """
        if previous is not None:
            if encode_payload(kind, ref, root).hex() not in previous.raw.lower():
                raise ValueError(f"previous tx {previous.tx_hash} does not carry the anchor {kind} {ref} {root}.")
            alive, receipt = self._resume(previous, wait)
            if alive:
                return receipt
        prepared = self.prepare(kind, ref, root)
        save(prepared)
        if not self._broadcast(prepared):
            raise ChainRejected(f"The chain at {self.label} refused: nonce {prepared.nonce} was taken meanwhile.")
        return self.wait(prepared.tx_hash, wait)

    def _resume(self, previous: PreparedTx, wait: float) -> tuple[bool, Receipt | None]:
        """(True, receipt or None if still pending) for a live `previous`; (False, None) if it can never be mined."""
        with self._rpc():
            # Nonce first, receipt second: a nonce used by the time the receipt is missing was used by another tx.
            used_nonces = self.w3.eth.get_transaction_count(previous.sender, "latest")
        receipt = self.receipt(previous.tx_hash)
        if receipt is not None:
            return True, receipt
        if used_nonces > previous.nonce or not self._broadcast(previous):
            receipt = self.receipt(previous.tx_hash)  # it may have been mined just now
            return receipt is not None, receipt
        return True, self.wait(previous.tx_hash, wait)

    def _broadcast(self, prepared: PreparedTx) -> bool:
        """Send the raw tx; True if the node has it, False if its nonce is stale."""
        try:
            with self._rpc():
                self.w3.eth.send_raw_transaction(prepared.raw)
        except ChainRejected as exc:
            if _has(str(exc), _ALREADY_KNOWN):
                return True
            if _has(str(exc), _STALE_NONCE):
                return False
            raise
        return True

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined tx, None if unknown or still pending."""
        with self._rpc():
            try:
                found = self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None
        if found is None or found.get("blockNumber") is None:
            return None
        return Receipt(
            tx_hash=HexBytes(found["transactionHash"]).to_0x_hex(),
            block_number=found["blockNumber"],
            status=found["status"],
        )

    def wait(self, tx_hash: str, seconds: float) -> Receipt | None:
        """Poll for the receipt until `seconds` have passed (always looks at least once)."""
        deadline = time.monotonic() + seconds
        while True:
            receipt = self.receipt(tx_hash)
            remaining = deadline - time.monotonic()
            if receipt is not None or remaining <= 0:
                return receipt
            time.sleep(min(POLL_SECONDS, remaining))

    # --- reading ---

    def read(self, tx_hash: str) -> AnchorRecord | None:
        """The anchor in a mined tx; None if the tx is unknown, pending, failed or not our payload."""
        with self._rpc():
            try:
                tx = self.w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                return None
        decoded = decode_payload(HexBytes(tx.get("input", b"")))
        receipt = self.receipt(tx_hash) if decoded else None
        if decoded is None or receipt is None or receipt.status != 1:
            return None
        kind, ref, root = decoded
        return AnchorRecord(kind, ref, root, receipt.tx_hash, receipt.block_number, tx["from"])
