"""The OpenAI-compatible API through the official `openai` client, a real daphne and a
real serving worker process; adapter export loaded with PeftModel as is."""

from __future__ import annotations

import io
import json
import re
import zipfile

import openai
import pytest
import requests

from accounts.services import create_api_key
from tests.helpers import ARTIFACTS, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
WORKER_LOG = ARTIFACTS / "serving-worker.log"  # written by the serving_worker fixture


def oai(live_url, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_url + "/v1", api_key=key, max_retries=0, timeout=120)


def test_the_official_client_lists_models_and_chats(live_url, serving_worker, model_setup):
    job, key = model_setup
    client = oai(live_url, key)
    ids = [m.id for m in client.models.list().data]
    assert f"mf-{job.pk}" in ids and f"base-{job.base_model.pk}" in ids
    ask = {"model": f"mf-{job.pk}", "messages": [{"role": "user", "content": "What is LoRA?"}], "max_tokens": 10,
           "temperature": 0}  # fmt: skip
    reply = client.chat.completions.create(**ask)
    text = reply.choices[0].message.content
    assert reply.usage.completion_tokens > 0 and reply.choices[0].finish_reason in ("stop", "length")
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**ask, stream=True))
    assert streamed == text
    base = client.chat.completions.create(**{**ask, "model": f"base-{job.base_model.pk}"})
    assert base.choices[0].message.content != text  # the adapter changes the answer


def test_errors_come_in_openai_shape(live_url, serving_worker, model_setup, other_user):
    job, key = model_setup
    client = oai(live_url, key)
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="mf-999999", messages=msgs)
    with pytest.raises(openai.AuthenticationError):
        oai(live_url, "mf_wrong").models.list()
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=f"mf-{job.pk}", messages=msgs, temperature=5)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model=f"mf-{job.pk}", messages=[{"role": "user", "content": "word " * 3000}])
    _, other_key = create_api_key(other_user, "other")
    with pytest.raises(openai.NotFoundError):
        oai(live_url, other_key).chat.completions.create(model=f"mf-{job.pk}", messages=msgs)
    raw = requests.post(live_url + "/v1/chat/completions", data=b"{nope", headers={"Authorization": f"Bearer {key}"})
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    bad_roles = requests.post(live_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": f"mf-{job.pk}", "messages": [{"role": "wizard", "content": 1}]})  # fmt: skip
    assert bad_roles.status_code == 400 and "role" in bad_roles.json()["error"]["message"]


def test_a_client_that_disconnects_mid_stream_frees_its_slot(live_url, serving_worker, model_setup):
    import redis
    from django.conf import settings

    job, key = model_setup
    conn = redis.Redis.from_url(settings.REDIS_URL)
    body = {"model": f"mf-{job.pk}", "messages": [{"role": "user", "content": "Tell me everything."}],
            "max_tokens": 1000, "temperature": 1.0, "stream": True}  # fmt: skip
    ended = re.compile(r"ended \((\w+)\) after (\d+) token")
    outcomes = []
    # A sampled answer may end on its own (an end-of-text token) before the hang-up reaches the worker
    # (vLLM writes 1,000 tokens in ~2 s here): that try shows nothing, so it is asked again, up to 5 times.
    # A hang-up that never reaches the backend ends every try on its own, and fails.
    while len(outcomes) < 5 and "cancelled" not in outcomes:
        before = set(conn.scan_iter("serving:cancel:*"))
        log_from = WORKER_LOG.stat().st_size
        with requests.post(live_url + "/v1/chat/completions", json=body, timeout=60, stream=True,
                           headers={"Authorization": f"Bearer {key}"}) as response:  # fmt: skip
            assert response.status_code == 200
            next(response.iter_lines())  # one chunk, then hang up
        wait_until(lambda start=log_from: ended.search(WORKER_LOG.read_bytes()[start:].decode()), timeout=30)
        reason, tokens = ended.search(WORKER_LOG.read_bytes()[log_from:].decode()).groups()
        outcomes.append(reason)
    assert set(conn.scan_iter("serving:cancel:*")) - before  # the API told the worker the caller left
    assert outcomes[-1] == "cancelled" and int(tokens) < 1000, outcomes  # the backend stopped that answer
    # The worker stops that row and serves the next request right away.
    quick = oai(live_url, key).chat.completions.create(model=f"mf-{job.pk}", max_tokens=3, temperature=0,
                                                        messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert quick.choices[0].message.content is not None


def test_the_exported_zip_loads_with_peft_and_matches_the_server(live_url, serving_worker, model_setup, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job, key = model_setup
    headers = {"Authorization": f"Bearer {key}"}
    detail = requests.get(f"{live_url}/api/v1/models/mf-{job.pk}/", headers=headers).json()
    assert detail["kind"] == "adapter" and detail["base"] == job.base_model.name  # a name, never a server path
    response = requests.get(f"{live_url}/api/v1/models/mf-{job.pk}/export/", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "adapter").iterdir()}
    exported = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert exported["base_model_name_or_path"] == job.base_model.name  # a local base: its name, not its folder
    tok = AutoTokenizer.from_pretrained(job.base_model.source)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(job.base_model.source), str(tmp_path / "adapter")
    )
    msgs = [{"role": "user", "content": "What is LoRA?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.eval().generate(**ids, max_new_tokens=10, do_sample=False)
    local = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    served = oai(live_url, key).chat.completions.create(model=f"mf-{job.pk}", messages=msgs, max_tokens=10,
                                                         temperature=0).choices[0].message.content  # fmt: skip
    assert served == local
    assert requests.get(f"{live_url}/api/v1/models/mf-{job.pk}/export/").status_code in (401, 403)


def test_merged_export_runs_as_a_background_job_and_matches_the_server(
    live_url, serving_worker, celery_worker_process, model_setup, other_user, tmp_path
):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job, key = model_setup
    headers = {"Authorization": f"Bearer {key}"}
    started = requests.get(f"{live_url}/api/v1/models/mf-{job.pk}/export/?merged=true", headers=headers)
    assert started.status_code == 202, started.text
    status_url = started.json()["status_url"]
    wait_until(lambda: requests.get(status_url, headers=headers).json()["status"] in ("succeeded", "failed"), 120)
    status = requests.get(status_url, headers=headers).json()
    assert status["status"] == "succeeded", status
    _, other_key = create_api_key(other_user, "nosy")
    assert requests.get(status_url, headers={"Authorization": f"Bearer {other_key}"}).status_code == 404
    archive = requests.get(status["download_url"], headers=headers)
    zipfile.ZipFile(io.BytesIO(archive.content)).extractall(tmp_path / "merged")
    names = {p.name for p in (tmp_path / "merged").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    msgs = [{"role": "user", "content": "What is LoRA?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=10, do_sample=False)
    local = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    served = oai(live_url, key).chat.completions.create(model=f"mf-{job.pk}", messages=msgs, max_tokens=10,
                                                         temperature=0).choices[0].message.content  # fmt: skip
    assert served == local
