"""Decoding against transformers' generate() and logits warpers on the same random weights."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from gpt2kit import generate
from gpt2kit.errors import GenerationError
from gpt2kit.generation import logits as steps
from helpers import hf_pair, random_model, tiny_config

PROMPTS = [[464], [464, 3290, 318, 257], list(range(1000, 1030))]


@pytest.mark.parametrize("prompt", PROMPTS, ids=["1-token", "4-tokens", "30-tokens"])
def test_greedy_matches_transformers(tmp_path, prompt):
    hf, ours = hf_pair(tmp_path, tiny_config(n_positions=128))
    out = generate(ours, prompt, max_new_tokens=40, temperature=0)
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=40, do_sample=False, pad_token_id=50256)
    assert out == [ref[0, len(prompt):].tolist()]


@pytest.mark.parametrize(
    "make_ours,make_ref",
    [
        (lambda: steps.temperature(0.7), lambda: TemperatureLogitsWarper(0.7)),
        (lambda: steps.top_k(40), lambda: TopKLogitsWarper(40)),
        (lambda: steps.top_k(1), lambda: TopKLogitsWarper(1)),
        (lambda: steps.top_p(0.9), lambda: TopPLogitsWarper(0.9)),
        (lambda: steps.top_p(0.05), lambda: TopPLogitsWarper(0.05)),
    ],
    ids=["temperature", "top-k", "top-k-1", "top-p", "top-p-small"],
)
def test_filters_match_transformers_warpers(make_ours, make_ref):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50257, generator=gen) * 3
    ids = torch.zeros(4, 1, dtype=torch.long)
    before = logits.clone()
    ours = make_ours()(ids, logits)
    ref = make_ref()(ids, logits.clone())
    assert torch.equal(logits, before)  # steps never modify their input
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    finite = torch.isfinite(ref)
    assert torch.allclose(ours[finite], ref[finite])
    assert torch.allclose(ours.softmax(-1), ref.softmax(-1), atol=1e-6)


def test_seed_makes_samples_reproducible(tiny_model):
    kwargs = dict(max_new_tokens=20, temperature=0.9, top_k=50, top_p=0.95, num_samples=3)
    a = generate(tiny_model, [464, 3290], seed=7, **kwargs)
    b = generate(tiny_model, [464, 3290], seed=7, **kwargs)
    c = generate(tiny_model, [464, 3290], seed=8, **kwargs)
    assert a == b and a != c
    assert len({tuple(s) for s in a}) == 3  # samples in a batch are independent
    assert all(len(s) == 20 for s in a)


def test_top_k_1_is_greedy(tiny_model):
    assert generate(tiny_model, [10, 20], max_new_tokens=15, top_k=1, seed=0) == \
        generate(tiny_model, [10, 20], max_new_tokens=15, temperature=0)


def test_stops_at_eos(tiny_model):
    free = generate(tiny_model, [5], max_new_tokens=10, temperature=0, eos_token_id=None)[0]
    stopped = generate(tiny_model, [5], max_new_tokens=10, temperature=0, eos_token_id=free[3])[0]
    assert stopped == free[: free.index(free[3]) + 1]


def test_generates_past_the_context(tiny_model):
    ctx = tiny_model.config.n_positions
    out = generate(tiny_model, list(range(100, 120)), max_new_tokens=3 * ctx, temperature=0, eos_token_id=None)
    assert len(out[0]) == 3 * ctx


def test_window_slides_to_the_last_three_quarters():
    model = random_model(tiny_config(n_positions=16))
    prompt = list(range(300, 310))
    out = generate(model, prompt, max_new_tokens=8, temperature=0, eos_token_id=None)[0]
    seq = prompt + out  # 18 tokens: the 7th new token was predicted from all 16, the 8th after a slide
    with torch.no_grad():
        expected = model(torch.tensor([seq[17 - 12:17]]))[0, -1].argmax().item()
    assert out[7] == expected


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(temperature=-1), "temperature"),
        (dict(top_p=0), "top-p"),
        (dict(top_p=1.5), "top-p"),
        (dict(top_k=-1), "top-k"),
        (dict(max_new_tokens=-1), "max-new-tokens"),
        (dict(num_samples=0), "num-samples"),
        (dict(beams=3), "unknown generation setting"),
    ],
)
def test_invalid_settings(tiny_model, kwargs, message):
    with pytest.raises(GenerationError, match=message):
        generate(tiny_model, [1, 2], **kwargs)


def test_invalid_prompts(tiny_model):
    with pytest.raises(GenerationError, match="empty"):
        generate(tiny_model, [], max_new_tokens=1)
    with pytest.raises(GenerationError, match="leaves no room"):
        generate(tiny_model, [1] * 64, max_new_tokens=1)
    with pytest.raises(GenerationError, match="outside the vocabulary"):
        generate(tiny_model, [50257], max_new_tokens=1)
