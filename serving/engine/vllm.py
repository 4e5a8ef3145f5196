"""The vLLM backend: the serving worker hands requests to vLLM's OpenAI-compatible server (its own
process, from its own environment: `make vllm-serve`), which does the batching, paged KV cache and LoRA
kernels. This module only speaks HTTP (aiohttp) and keeps the adapter list in order:

- adapters are loaded at run time by path (`/v1/load_lora_adapter`, the server runs with
  VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) and unloaded least recently used first, under the same count
  and byte budget the built-in cache honours (SERVING_MAX_ADAPTERS, SERVING_MAX_ADAPTER_BYTES), never
  while a request uses them;
- every sampling parameter means what it means on the built-in engine (temperature, top_p, seed, stop,
  max_tokens); cancelling closes the HTTP stream, which vLLM turns into an abort;
- the server serves one base model: a request for another gets a clear error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from pathlib import Path

from serving.engine.adapters import AdapterBusy, AdapterError
from serving.engine.backend import Backend, EventStream
from serving.engine.engine import Event, GenerationError, Request, check_fits

log = logging.getLogger("serving.engine")
FINISH = {"stop": "stop", "length": "length"}  # anything else vLLM says ends as "stop"


class VllmBackend(Backend):
    name = "vllm"

    def __init__(self, url: str, max_adapters: int, max_adapter_bytes: int):
        self.url = url.rstrip("/")
        self.max_adapters, self.max_adapter_bytes = max_adapters, max_adapter_bytes
        self.loaded: OrderedDict[str, int] = OrderedDict()  # adapter name → bytes, least recently used first
        self.in_use: dict[str, int] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.served: dict[str, str] = {}  # base source (path or hub id) → the server's model id
        self.context: dict[str, int] = {}  # the server's model id → its context length
        self.tokenizers: dict = {}
        self.session = None
        self.adapter_lock = asyncio.Lock()
        self.counts = {"requests": 0, "tokens_out": 0, "loads": 0, "unloads": 0}

    async def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def generate(self, request: Request, user: str, base: str) -> EventStream:
        stream = EventStream(request.id, asyncio.get_running_loop())
        self.tasks[request.id] = asyncio.create_task(self._run(request, base, stream))
        return stream

    def cancel(self, request_id: str) -> None:
        task = self.tasks.get(request_id)
        if task is not None:
            task.cancel()

    def metrics(self) -> dict:
        return {**self.counts, "resident_adapters": len(self.loaded), "resident_bytes": sum(self.loaded.values())}

    # --- one request -------------------------------------------------------------------

    async def _run(self, request: Request, base: str, stream: EventStream) -> None:
        counted = {"prompt": 0, "completion": 0}
        try:
            model = await self._model_for(request, base)
            finish = await self._chat(request, model, stream, counted)
            stream.put(Event(request.id, "", finish, counted["prompt"], counted["completion"]))
        except asyncio.CancelledError:
            stream.put(Event(request.id, "", "cancelled", counted["prompt"], counted["completion"]))
        except (GenerationError, AdapterError) as exc:
            stream.put(Event(request.id, finish_reason="error", error=exc))
        except Exception as exc:  # the server is down or answered nonsense: the caller gets a 503
            log.warning("vLLM request failed: %r", exc)
            error = RuntimeError(f"The vLLM model server at {self.url} did not answer: {exc or type(exc).__name__}")
            stream.put(Event(request.id, finish_reason="error", error=error))
        finally:
            self.tasks.pop(request.id, None)
            if request.adapter and request.adapter in self.in_use:
                self.in_use[request.adapter] -= 1

    async def _chat(self, request: Request, model: str, stream: EventStream, counted: dict) -> str:
        p = request.params
        body = {
            "model": model, "messages": request.messages, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "max_tokens": p.max_tokens, "temperature": p.temperature, "top_p": p.top_p, "stop": p.stop or None,
            "seed": p.seed, "skip_special_tokens": True,
        }  # fmt: skip
        self.counts["requests"] += 1
        finish = "stop"
        async with self.session.post(f"{self.url}/v1/chat/completions", json=body) as response:
            if response.status != 200:
                raise await _refusal(response)
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("error"):  # the stream had begun when the server failed
                    raise RuntimeError((chunk["error"] or {}).get("message") or "vLLM failed mid-answer")
                usage = chunk.get("usage") or {}
                counted["prompt"] = usage.get("prompt_tokens", counted["prompt"])
                counted["completion"] = usage.get("completion_tokens", counted["completion"])
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        stream.put(Event(request.id, text, None, counted["prompt"], counted["completion"]))
                    if choice.get("finish_reason"):
                        finish = FINISH.get(choice["finish_reason"], "stop")
        self.counts["tokens_out"] += counted["completion"]
        return finish

    # --- models and adapters -----------------------------------------------------------

    async def _model_for(self, request: Request, base: str) -> str:
        if base not in self.served:
            async with self.session.get(f"{self.url}/v1/models") as response:
                models = (await response.json())["data"]
            for m in models:
                if m.get("parent") is None:  # the base model, not a loaded adapter
                    self.served[m["id"]] = self.served[m.get("root") or m["id"]] = m["id"]
                    self.context[m["id"]] = int(m.get("max_model_len") or 2048)
            if base not in self.served:
                raise GenerationError(
                    f"This model server runs another base model ({', '.join(sorted(set(self.served.values())))}), "
                    "not the one this model was trained on."
                )
        model = self.served[base]
        if model not in self.tokenizers:  # to refuse what cannot fit in the words the built-in engine uses
            from transformers import AutoTokenizer

            self.tokenizers[model] = await asyncio.to_thread(AutoTokenizer.from_pretrained, base)
        await asyncio.to_thread(check_fits, self.tokenizers[model], request, self.context[model])
        if not request.adapter:
            return model
        if not request.adapter_path:
            raise AdapterError(f"No stored adapter for {request.adapter!r}.")
        async with self.adapter_lock:
            await self._ensure(request.adapter, request.adapter_path)
            self.in_use[request.adapter] = self.in_use.get(request.adapter, 0) + 1
        return request.adapter

    async def _ensure(self, name: str, path: str) -> None:
        if name in self.loaded:
            self.loaded.move_to_end(name)
            return
        folder = Path(path)
        if not (folder / "adapter_config.json").exists():
            raise AdapterError(f"No adapter at {folder} (adapter_config.json missing).")
        incoming = sum(f.stat().st_size for f in folder.glob("adapter_model.*"))
        while self.loaded and (
            len(self.loaded) >= self.max_adapters or sum(self.loaded.values()) + incoming > self.max_adapter_bytes
        ):
            victim = next((n for n in self.loaded if not self.in_use.get(n)), None)
            if victim is None:
                raise AdapterBusy("Every resident adapter is in use; retry in a moment.")
            await self._post("/v1/unload_lora_adapter", {"lora_name": victim})
            del self.loaded[victim]
            self.counts["unloads"] += 1
        await self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(folder)})
        self.loaded[name] = incoming
        self.counts["loads"] += 1

    async def _post(self, path: str, body: dict) -> None:
        async with self.session.post(f"{self.url}{path}", json=body) as response:
            if response.status != 200:
                text = await response.text()
                if "already been loaded" in text or "not been loaded" in text.lower():
                    return  # the server kept it from an earlier run of this worker, or dropped it already
                refusal = await _refusal(response, text)
                raise AdapterError(f"vLLM could not load or unload the adapter: {refusal}")


async def _refusal(response, text: str | None = None) -> Exception:
    """vLLM's error, as ours: a 4xx is the request's fault (GenerationError), anything else the server's."""
    text = text if text is not None else await response.text()
    try:
        data = json.loads(text)
        message = (
            (data.get("error") or {}).get("message") if isinstance(data.get("error"), dict) else data.get("message")
        )
    except (ValueError, AttributeError):
        message = None
    message = message or text[:300] or f"HTTP {response.status}"
    if 400 <= response.status < 500:
        return GenerationError(message)
    return RuntimeError(f"The vLLM server answered {response.status}: {message}")
