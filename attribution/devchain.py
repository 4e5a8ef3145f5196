"""A local EVM node for development: ``python -m attribution.devchain --port 8545``.

A small JSON-RPC-over-HTTP server (stdlib ThreadingHTTPServer) in front of web3's
EthereumTesterProvider (py-evm, auto-mining: every accepted tx is mined at once in its own block).
Its first account, private key 0x00..01 (``attribution.engine.chain.DEV_PRIVATE_KEY``), is funded.

Requests are translated the way web3's own eth-tester middleware does (hex quantities in,
camelCase keys and hex quantities out), so ``Web3(HTTPProvider(url))`` works for the calls an
anchoring client makes: chain id, nonce, gas estimate, fees, raw transactions, transactions,
receipts, blocks. JSON-RPC batch arrays are supported.

Restarts: every accepted raw transaction is appended to the journal (one JSON line, fsync) and the
journal is replayed in order at start-up. The genesis state is deterministic, so every tx gets the
same hash, nonce and block number again; block hashes and timestamps differ after a restart.
Calls that change state outside raw transactions (eth_sendTransaction, evm_*, testing_*) are
refused, because they would not survive a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.middleware import request_formatters, result_formatters

from attribution.engine.chain import keep_recursion_limit

MAX_BODY = 1 << 20  # 1 MiB: anchoring requests are tiny
REFUSED_PREFIXES = ("eth_sendTransaction", "evm_", "testing_", "personal_")


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def jsonable(value: Any) -> Any:
    """Python results of eth-tester as JSON-RPC values: bytes -> 0x-hex, ints -> hex quantities."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        if isinstance(value.get("logsBloom"), int):  # eth-tester gives 0; clients expect the 256-byte bloom
            value = {**value, "logsBloom": value["logsBloom"].to_bytes(256, "big")}
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _reverted(request_id: Any, exc: Exception) -> dict[str, Any] | None:
    """A contract revert answered as geth does (code 3, the Error(string) data), so clients read its reason."""
    message = str(exc)
    if "execution reverted" not in message:
        return None
    from eth_abi import encode

    reason = message.split("execution reverted", 1)[1].lstrip(": ").strip().strip("'\"")
    data = "0x08c379a0" + encode(["string"], [reason]).hex()
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": 3, "message": message, "data": data}}


class DevChain:
    """The chain, its lock (eth-tester is not thread-safe) and the journal of accepted raw txs."""

    def __init__(self, journal: Path | None) -> None:
        with keep_recursion_limit():  # it parses JSON bodies from the network
            self.provider = EthereumTesterProvider()
        self.lock = threading.Lock()
        self.journal = journal
        self.replayed = self._replay() if journal else 0

    def _replay(self) -> int:
        assert self.journal is not None
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        if not self.journal.exists():
            return 0
        count = 0
        for number, line in enumerate(self.journal.read_text().splitlines(), 1):
            try:
                self._call("eth_sendRawTransaction", [json.loads(line)["raw"]])
                count += 1
            except Exception as exc:  # a torn last line after a crash must not stop the node
                print(f"devchain: journal line {number} not replayed: {exc}", file=sys.stderr)
        return count

    def _call(self, method: str, params: list[Any]) -> Any:
        formatter = request_formatters.get(method)
        response = self.provider.make_request(method, formatter(params) if formatter else params)
        if "error" in response:
            error = response["error"]
            raise RpcError(error.get("code", -32000), str(error.get("message", error)))
        result = response["result"]
        formatter = result_formatters.get(method)
        return formatter(result) if formatter and result is not None else result

    def _record(self, raw: str, tx_hash: Any) -> None:
        if self.journal is None:
            return
        with self.journal.open("a") as journal:
            journal.write(json.dumps({"raw": raw, "hash": jsonable(tx_hash)}) + "\n")
            journal.flush()
            os.fsync(journal.fileno())  # the tx is acknowledged only once it would survive a crash

    def handle(self, request: Any) -> dict[str, Any]:
        """One JSON-RPC request object -> one response object (never raises)."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(request.get("id") if isinstance(request, dict) else None, -32600, "Invalid Request")
        request_id, method, params = request.get("id"), request["method"], request.get("params", [])
        if not isinstance(params, list):
            return _error(request_id, -32602, "Invalid params: expected an array")
        if method.startswith(REFUSED_PREFIXES):
            return _error(
                request_id, -32601, f"{method} is not supported by the devchain (it would not survive a restart)"
            )
        try:
            with self.lock:
                result = self._call(method, params)
                if method == "eth_sendRawTransaction":
                    self._record(params[0], result)
        except RpcError as exc:
            return _error(request_id, exc.code, exc.message)
        except Exception as exc:  # eth-tester raises its validation errors (nonce, funds) as exceptions
            return _reverted(request_id, exc) or _error(request_id, -32000, str(exc) or type(exc).__name__)
        return {"jsonrpc": "2.0", "id": request_id, "result": jsonable(result)}

    def handle_body(self, body: bytes) -> Any:
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(None, -32700, "Parse error")
        if isinstance(payload, list):
            return [self.handle(item) for item in payload] if payload else _error(None, -32600, "Invalid Request")
        return self.handle(payload)


def _handler_for(chain: DevChain) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, _error(None, -32600, "Request too large"))
                return
            self._reply(200, chain.handle_body(self.rfile.read(length)))

        def do_GET(self) -> None:
            self._reply(405, _error(None, -32600, "POST JSON-RPC requests to this URL"))

        def _reply(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per RPC call would drown the ready line and real errors

    return Handler


def serve(host: str, port: int, journal: str | Path | None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Replay the journal, listen (port 0 picks a free one: see server.server_address) and serve in a thread."""
    chain = DevChain(Path(journal) if journal else None)
    server = ThreadingHTTPServer((host, port), _handler_for(chain))
    server.daemon_threads = True
    server.chain = chain  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.2,), name="devchain", daemon=True)
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attribution.devchain", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8545, help="0 picks a free port (printed in the ready line)")
    parser.add_argument("--journal", default="var/chain/journal.jsonl", help="'' keeps nothing across restarts")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server, thread = serve(args.host, args.port, args.journal or None)
    except OSError as exc:
        print(f"devchain: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"devchain: replayed {server.chain.replayed} transactions", file=sys.stderr)  # type: ignore[attr-defined]
    print(f"devchain ready on http://{args.host}:{server.server_address[1]}", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
