"""The server on the onnxruntime backend: the same answers as the PyTorch model it was exported from."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

import gpt2kit
from gpt2kit.generation import complete
from serving_helpers import running_server

pytest.importorskip("onnxruntime")


def test_onnxruntime_backend_serves_the_torch_models_answers(tmp_path):
    from gpt2kit.export import export_onnx

    torch_loaded = gpt2kit.load()
    export_onnx("default", tmp_path / "onnx", fused=True)
    ort_loaded = gpt2kit.load(tmp_path / "onnx", backend="onnxruntime")
    prompts = ["In the beginning", "And the LORD said unto Moses,", "Blessed"]
    expected = [complete(torch_loaded.model, torch_loaded.tokenizer, p, max_new_tokens=16, temperature=0)[0].text
                for p in prompts]
    with running_server(ort_loaded) as server, httpx.Client(timeout=120) as client:
        def ask(prompt):
            return client.post(server.v1 + "/completions", json={"prompt": prompt, "max_tokens": 16,
                                                                  "temperature": 0}).json()["choices"][0]["text"]

        with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:  # joining one batch
            assert list(pool.map(ask, prompts)) == expected
        echo = client.post(server.v1 + "/completions", json={"prompt": prompts[1], "max_tokens": 0, "echo": True,
                                                             "logprobs": 0}).json()["choices"][0]["logprobs"]
    reference = gpt2kit.score(torch_loaded.model, prompts[1], tokenizer=torch_loaded.tokenizer)[0]
    assert echo["token_logprobs"][1:] == pytest.approx(reference.logprobs[1:], abs=1e-4)
