"""The chain engine: anchoring roots as data transactions, idempotent retries, the devchain over HTTP."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from attribution.engine.chain import (
    DEV_PRIVATE_KEY,
    MAGIC,
    Chain,
    ChainRejected,
    ChainUnavailable,
    PreparedTx,
    decode_payload,
    encode_payload,
)

BASE_DIR = Path(__file__).resolve().parents[2]
ROOT_A = "ab" * 32
ROOT_B = "0x" + "CD" * 32  # 0x-prefixed upper case is accepted and normalised


def nonce(chain: Chain) -> int:
    return chain.w3.eth.get_transaction_count(chain.address, "pending")


def start_devchain(journal: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Run `python -m attribution.devchain` on a free port; returns the process and its URL."""
    command = [sys.executable, "-m", "attribution.devchain", "--port", "0", "--journal", str(journal)]
    with log.open("a") as stderr:
        proc = subprocess.Popen(command, cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=stderr, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline().strip() if ready else ""
    if not line.startswith("devchain ready on http://"):
        proc.kill()
        raise AssertionError(f"devchain did not start: {line!r} {log.read_text()}")
    return proc, line.removeprefix("devchain ready on ")


def stop_devchain(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=15)


def test_it_decodes_only_its_own_payloads():
    payload = encode_payload("datanet_version", "datanet:12:v3", ROOT_B)
    assert payload.startswith(MAGIC)
    assert decode_payload(payload) == ("datanet_version", "datanet:12:v3", "cd" * 32)
    assert encode_payload("datanet", "datanet:12:v3", ROOT_B) == payload  # short alias, same bytes
    assert decode_payload(encode_payload("epoch", "epoch:4", ROOT_A)) == ("reward_epoch", "epoch:4", ROOT_A)
    assert decode_payload(b"") is None
    assert decode_payload(b"\xa9\x05\x9c\xbb" + bytes(64)) is None  # an ERC-20 transfer
    assert decode_payload(MAGIC + b"\x09" + bytes(32)) is None  # unknown kind code
    assert decode_payload(MAGIC + b"\x01" + bytes(31)) is None  # truncated root
    assert decode_payload(MAGIC + b"\x01" + bytes(32) + b"\xff\xfe") is None  # ref not utf-8
    with pytest.raises(ValueError):
        encode_payload("datanet_version", "x", "abc")
    with pytest.raises(ValueError):
        encode_payload("model", "x", ROOT_A)


def test_it_anchors_reads_back_and_does_not_resend_in_process():
    chain = Chain()
    saved: list[PreparedTx] = []
    receipt = chain.submit("datanet_version", "datanet:12:v3", ROOT_A, None, saved.append)
    assert receipt is not None and receipt.status == 1
    assert [tx.tx_hash for tx in saved] == [receipt.tx_hash]
    record = chain.read(receipt.tx_hash)
    assert (record.kind, record.ref, record.root) == ("datanet_version", "datanet:12:v3", ROOT_A)
    assert (record.block_number, record.sender) == (receipt.block_number, chain.address)

    before = nonce(chain)
    again = chain.submit("datanet_version", "datanet:12:v3", ROOT_A, saved[-1], saved.append)
    assert again == receipt and len(saved) == 1 and nonce(chain) == before


def test_it_sends_a_saved_but_unsent_tx_with_the_same_hash():
    chain = Chain()
    saved: list[PreparedTx] = []

    def crash_after_saving(tx: PreparedTx) -> None:
        saved.append(tx)
        raise KeyboardInterrupt("crash between save and send")

    before = nonce(chain)
    with pytest.raises(KeyboardInterrupt):
        chain.submit("reward_epoch", "epoch:4", ROOT_B, None, crash_after_saving)
    assert nonce(chain) == before  # nothing reached the chain

    receipt = chain.submit("reward_epoch", "epoch:4", ROOT_B, saved[0], saved.append)
    assert receipt.tx_hash == saved[0].tx_hash and len(saved) == 1
    assert chain.read(receipt.tx_hash).root == "cd" * 32


def test_it_replaces_a_tx_whose_nonce_was_taken():
    chain = Chain()
    stale = chain.prepare("reward_epoch", "epoch:5", ROOT_A)
    chain.submit("reward_epoch", "epoch:6", ROOT_B, None, lambda tx: None)  # uses the same nonce first
    saved: list[PreparedTx] = []
    receipt = chain.submit("reward_epoch", "epoch:5", ROOT_A, stale, saved.append)
    assert receipt.tx_hash == saved[0].tx_hash != stale.tx_hash
    assert chain.read(receipt.tx_hash).ref == "epoch:5"
    assert chain.read(stale.tx_hash) is None  # never mined


def test_it_returns_none_while_pending_and_the_receipt_once_mined():
    from eth_tester import EthereumTester
    from web3.providers.eth_tester import EthereumTesterProvider

    tester = EthereumTester()
    tester.disable_auto_mine_transactions()
    chain = Chain(provider=EthereumTesterProvider(tester))
    saved: list[PreparedTx] = []
    assert chain.submit("reward_epoch", "epoch:7", ROOT_A, None, saved.append, wait=0.2) is None
    assert chain.read(saved[0].tx_hash) is None  # pending is not anchored yet
    assert chain.submit("reward_epoch", "epoch:7", ROOT_A, saved[0], saved.append, wait=0.2) is None
    tester.mine_blocks(1)
    receipt = chain.submit("reward_epoch", "epoch:7", ROOT_A, saved[0], saved.append, wait=0.2)
    assert receipt.tx_hash == saved[0].tx_hash and len(saved) == 1


def test_it_anchors_over_the_devchain_and_survives_a_restart(tmp_path):
    journal, log = tmp_path / "chain" / "journal.jsonl", tmp_path / "devchain.log"
    proc, url = start_devchain(journal, log)
    try:
        chain = Chain(url, timeout=5)
        saved: list[PreparedTx] = []
        receipt = chain.submit("datanet_version", "datanet:3:v1", ROOT_A, None, saved.append)
        assert receipt.status == 1 and chain.read(receipt.tx_hash).root == ROOT_A
        with pytest.raises(ChainRejected):
            Chain(url, private_key=Account.create().key.to_0x_hex(), timeout=5).submit(
                "reward_epoch", "epoch:1", ROOT_B, None, lambda tx: None
            )
    finally:
        assert stop_devchain(proc) == 0
    assert len(journal.read_text().splitlines()) == 1  # only the accepted tx

    proc, url = start_devchain(journal, log)
    try:
        chain = Chain(url, timeout=5)
        record = chain.read(receipt.tx_hash)
        assert (record.kind, record.ref, record.root) == ("datanet_version", "datanet:3:v1", ROOT_A)
        assert record.block_number == receipt.block_number
        before = nonce(chain)
        assert chain.submit("datanet_version", "datanet:3:v1", ROOT_A, saved[-1], saved.append) == receipt
        assert nonce(chain) == before and len(saved) == 1
    finally:
        assert stop_devchain(proc) == 0


def test_it_reports_a_down_chain_fast():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    chain = Chain(f"http://127.0.0.1:{port}", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ChainUnavailable, match=f"The chain at http://127.0.0.1:{port} is not reachable"):
        chain.submit("reward_epoch", "epoch:1", ROOT_A, None, lambda tx: None)
    with pytest.raises(ChainUnavailable):
        chain.read("0x" + "11" * 32)
    assert time.monotonic() - started < 3


def test_it_times_out_on_a_silent_chain():
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        chain = Chain(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ChainUnavailable, match="not reachable"):
            chain.read("0x" + "11" * 32)
        assert time.monotonic() - started < 3


def test_it_rejects_an_unfunded_or_bad_key():
    unfunded = Chain(private_key=Account.create().key.to_0x_hex())
    with pytest.raises(ChainRejected, match="refused"):
        unfunded.submit("reward_epoch", "epoch:1", ROOT_A, None, lambda tx: None)
    with pytest.raises(ChainRejected, match="private key"):
        Chain(private_key="0xnot-a-key")
    assert Chain(private_key=DEV_PRIVATE_KEY).address == Chain().address
