"""The onnxruntime backend: the same ids as the torch backend on the same weights, whatever the decoding.

The shipped model (trained, 6 layers, 256 context) rather than a random one: a random model
repeats one token, which would let stop strings and beams pass without being exercised."""

from __future__ import annotations

import json

import pytest
import torch

import gpt2kit
from gpt2kit import complete, generate, score
from gpt2kit.backends import Cache, Decoder
from gpt2kit.backends.onnxruntime_backend import OrtCache, OrtDecoder
from gpt2kit.errors import GPT2KitError, ModelNotFoundError
from gpt2kit.export import export_onnx
from helpers import random_model, tiny_config

PROMPTS = [[464, 3290, 318, 257, 1332], [15496], [40, 716, 7]]


@pytest.fixture(scope="module", params=["traced", "fused"])
def backends(request, tmp_path_factory):
    """The shipped model loaded by both backends: (torch, onnxruntime), on the traced graph and on the
    one with ONNX Runtime's fused operators (whose prefill asks for the last position's logits only)."""
    folder = tmp_path_factory.mktemp("backends")
    export_onnx("default", folder / "onnx", fused=request.param == "fused")
    return gpt2kit.load("default"), gpt2kit.load(folder / "onnx", backend="onnxruntime")


def test_loaded_as_a_decoder(backends):
    _, ort = backends
    assert isinstance(ort.model, OrtDecoder) and isinstance(ort.model, Decoder)
    assert isinstance(ort.model.new_cache(2), Cache)
    assert (ort.backend, ort.format, ort.dtype) == ("onnxruntime", "onnx", torch.float32)
    assert ort.metadata["origin"].startswith("gpt2kit's default model")
    assert ort.model.generation_config == {"bos_token_id": 50256, "eos_token_id": 50256}
    assert ort.model.config.n_positions == 256


@pytest.mark.parametrize("settings", [
    dict(temperature=0),
    dict(num_beams=3, num_return_sequences=2),
    dict(seed=7, top_k=40, top_p=0.9, num_samples=2),
    dict(seed=3, repetition_penalty=1.3, no_repeat_ngram_size=2, batch_size=2),
], ids=["greedy", "beam", "sampling", "penalties"])
def test_same_ids_on_both_backends(backends, settings):
    torch_model, ort_model = backends
    expected = generate(torch_model.model, PROMPTS, max_new_tokens=14, **settings)
    assert generate(ort_model.model, PROMPTS, max_new_tokens=14, **settings) == expected


def test_window_slides_past_the_context(backends):
    """A prompt near the 256-token context: the cache is reset and the window re-run."""
    torch_model, ort_model = backends
    prompts = [list(range(1000, 1250)), list(range(2000, 2230))]
    expected = generate(torch_model.model, prompts, max_new_tokens=20, temperature=0)
    assert generate(ort_model.model, prompts, max_new_tokens=20, temperature=0) == expected


def test_stop_strings_and_logprobs_through_complete(backends):
    torch_model, ort_model = backends
    greedy = generate(torch_model.model, PROMPTS[0], max_new_tokens=8, temperature=0)[0]
    stop = torch_model.tokenizer.decode(greedy[4:6])  # met at the 6th token
    prompts = [torch_model.tokenizer.decode(PROMPTS[0]), "And the LORD said"]
    expected = complete(torch_model.model, torch_model.tokenizer, prompts, max_new_tokens=10, temperature=0,
                        stop=[stop], logprobs=2)
    got = complete(ort_model.model, ort_model.tokenizer, prompts, max_new_tokens=10, temperature=0, stop=[stop],
                   logprobs=2)
    assert [(c.text, c.token_ids, c.finish_reason) for c in got] == \
           [(c.text, c.token_ids, c.finish_reason) for c in expected]
    assert expected[0].finish_reason == "stop_string"
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)


def test_scores_match(backends):
    torch_model, ort_model = backends
    texts = ["In the beginning God created the heaven and the earth.", "And God said"]
    for a, b in zip(score(ort_model.model, texts), score(torch_model.model, texts), strict=True):
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(list(a.logprobs[1:]), list(b.logprobs[1:]), atol=1e-4, rtol=0)


def test_cache_reorder_and_reset(backends):
    _, ort = backends
    model = ort.model
    ids = torch.tensor([[464, 3290, 318], [15496, 11, 995]])
    cache = model.new_cache(2)
    model(ids, cache=cache)
    cache.reorder(torch.tensor([1, 1, 0]))
    assert cache.length == 3 and cache.batch_size == 3
    step = model(torch.tensor([[13], [13], [13]]), cache=cache)
    alone = model(torch.cat([ids[[1, 1, 0]], torch.full((3, 1), 13)], dim=1))[:, -1:]
    torch.testing.assert_close(step, alone, atol=1e-5, rtol=0)
    cache.reset()
    assert cache.length == 0
    torch.testing.assert_close(model(ids[[1, 1, 0]], cache=cache), model(ids[[1, 1, 0]]), atol=1e-5, rtol=0)


def test_the_fused_graph_writes_into_one_preallocated_buffer(backends):
    """No step allocates or copies the past: ONNX Runtime writes the new keys/values into the
    KVCache it was given, as the torch backend does."""
    torch_model, ort = backends
    if not ort.model.past_buffer:  # the traced graph: a present of its own each step
        assert isinstance(ort.model.new_cache(2), OrtCache)
        return
    cache, expected_cache = ort.model.new_cache(2, 12), torch_model.model.new_cache(2, 12)
    buffer = cache.kv.data_ptr()
    ids = torch.tensor([[464, 3290, 318], [15496, 11, 995]])
    # the binding made for the buffer is kept: a call for the last logits only, then one for all of them
    for step, last_only in ((ids, False), (ids[:, :2], True), (ids[:, 1:], False), (ids[:, :1], False)):
        got = ort.model(step, cache=cache, last_only=last_only)
        torch.testing.assert_close(got, torch_model.model(step, cache=expected_cache, last_only=last_only),
                                   atol=1e-4, rtol=0)
        assert got.shape[1] == (1 if last_only else step.shape[1])
    assert cache.kv.data_ptr() == buffer and cache.length == 8
    torch.testing.assert_close(cache.kv[..., :8, :], expected_cache.kv[..., :8, :], atol=1e-5, rtol=0)


def test_folders_it_cannot_run_say_so(backends, tmp_path):
    torch_model, _ = backends
    export_onnx(torch_model.path, tmp_path / "base", variant="base")
    with pytest.raises(ModelNotFoundError, match=r"holds the 'base' graph, which gives no logits"):
        gpt2kit.load(tmp_path / "base", backend="onnxruntime")
    # a graph of other inputs in a folder that claims a decoder graph (as a foreign model.onnx would)
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    config["gpt2kit"]["onnx"]["variant"] = "decoder"
    (tmp_path / "base" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelNotFoundError, match=r"model.onnx: its inputs \(input_ids\) and outputs are not those "
                                                 r"of the decoder graph of this config.json \(6 layers"):
        gpt2kit.load(tmp_path / "base", backend="onnxruntime")
    with pytest.raises(GPT2KitError, match="runs fp32 or fp16 graphs, not bfloat16"):
        gpt2kit.load(torch_model.path, backend="onnxruntime", dtype=torch.bfloat16)


def test_a_pytorch_model_is_exported_on_first_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    random_model(tiny_config()).save_pretrained(tmp_path / "tiny")
    first = gpt2kit.load(tmp_path / "tiny", backend="onnxruntime")
    err = capsys.readouterr().err
    cache = tmp_path / "cache" / "gpt2kit" / "onnx"
    assert err.startswith(f"gpt2kit: exporting {tmp_path / 'tiny'} to ONNX (fp32) in {cache}/tiny-fp32-")
    assert err.endswith("for the onnxruntime backend (first use: later runs load it from there)\n")
    assert first.path.parent == cache and first.format == "onnx"
    again = gpt2kit.load(tmp_path / "tiny", backend="onnxruntime")
    assert again.path == first.path and capsys.readouterr().err == ""  # loaded from the cache, said nothing
    expected = generate(gpt2kit.load(tmp_path / "tiny").model, PROMPTS, max_new_tokens=8, temperature=0)
    assert generate(again.model, PROMPTS, max_new_tokens=8, temperature=0) == expected
    # a changed model is exported again
    random_model(tiny_config(), seed=1).save_pretrained(tmp_path / "tiny")
    assert gpt2kit.load(tmp_path / "tiny", backend="onnxruntime").path != first.path
    assert "exporting" in capsys.readouterr().err
