"""Beam search token ids against transformers' generate() on the same random weights."""

from __future__ import annotations

import pytest
import torch

from gpt2kit import generate
from gpt2kit.errors import GenerationError
from helpers import hf_pair, tiny_config

PROMPTS = [[464, 3290, 318, 257], [10, 20, 30, 40, 50, 60, 70], [5]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return hf_pair(tmp_path_factory.mktemp("beam"), tiny_config(n_positions=128))


def hf_generate(hf, prompts, **kwargs) -> list[list[int]]:
    """transformers on a left-padded batch; generated ids with the trailing padding removed."""
    width = max(map(len, prompts))
    ids = torch.tensor([[50256] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=mask, pad_token_id=50256, do_sample=False, **kwargs)
    return [strip(row[width:].tolist()) for row in out]


def strip(ids: list[int]) -> list[int]:
    """transformers pads finished rows with the pad id, which for GPT-2 is also end-of-text."""
    while ids and ids[-1] == 50256:
        ids = ids[:-1]
    return ids


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_beams=1, max_new_tokens=16),
        dict(num_beams=4, max_new_tokens=12),
        dict(num_beams=4, max_new_tokens=12, length_penalty=0.5, num_return_sequences=3),
        dict(num_beams=3, max_new_tokens=10, length_penalty=2.0, early_stopping=True, num_return_sequences=2),
        dict(num_beams=4, max_new_tokens=10, early_stopping="never", num_return_sequences=4),
        dict(num_beams=2, max_new_tokens=10, no_repeat_ngram_size=2, repetition_penalty=1.5),
    ],
    ids=["greedy", "beams4", "length-penalty-0.5", "early-stopping", "never", "with-penalties"],
)
def test_matches_transformers_on_a_mixed_batch(pair, kwargs):
    hf, ours = pair
    assert [strip(s) for s in generate(ours, PROMPTS, temperature=0, **kwargs)] == hf_generate(hf, PROMPTS, **kwargs)


def test_beams_that_finish_on_end_of_text(pair):
    hf, ours = pair
    # make the top beam's favourite first token the end-of-text token, so hypotheses finish early
    eos = generate(ours, [PROMPTS[0]], temperature=0, max_new_tokens=1, num_beams=4, eos_token_id=None)[0][0]
    kwargs = dict(num_beams=4, max_new_tokens=12, num_return_sequences=4, length_penalty=0.0, eos_token_id=eos)
    ours_out = generate(ours, PROMPTS, temperature=0, **kwargs)
    assert any(s[-1] == eos and len(s) < 12 for s in ours_out)
    assert [strip(s) for s in ours_out] == hf_generate(hf, PROMPTS, **kwargs)


def test_batch_size_splits_work_without_changing_results(pair):
    _, ours = pair
    kwargs = dict(temperature=0, num_beams=3, max_new_tokens=8, num_return_sequences=2)
    assert generate(ours, PROMPTS, batch_size=3, **kwargs) == generate(ours, PROMPTS, **kwargs)


def test_invalid_beam_settings(pair):
    _, ours = pair
    with pytest.raises(GenerationError, match="num-beams"):
        generate(ours, [1], num_beams=0)
    with pytest.raises(GenerationError, match="cannot exceed"):
        generate(ours, [1], num_beams=2, num_return_sequences=3)
    with pytest.raises(GenerationError, match="beam search cannot go past"):
        generate(ours, [1], num_beams=2, max_new_tokens=500)


def test_beam_search_is_deterministic_by_default(pair):
    """transformers' beam search samples only when asked to (do_sample): neither does ours, whatever the seed."""
    hf, ours = pair
    kwargs = dict(num_beams=3, max_new_tokens=10, num_return_sequences=2)
    first = generate(ours, PROMPTS, seed=1, **kwargs)
    assert generate(ours, PROMPTS, seed=2, **kwargs) == first
    assert [strip(s) for s in first] == hf_generate(hf, PROMPTS, **kwargs)


def test_beam_sampling_only_when_asked(pair):
    _, ours = pair
    kwargs = dict(num_beams=3, max_new_tokens=10, do_sample=True, top_k=50)
    runs = [generate(ours, PROMPTS, seed=seed, **kwargs) for seed in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


@pytest.mark.parametrize("option", [dict(temperature=0.7), dict(top_k=40), dict(top_p=0.9), dict(min_p=0.1)])
def test_sampling_options_without_sampling_are_refused(pair, option):
    _, ours = pair
    name = next(iter(option)).replace("_", "-")
    with pytest.raises(GenerationError, match=f"{name} applies to sampling, and beam search is deterministic"):
        generate(ours, [1], num_beams=2, **option)
    with pytest.raises(GenerationError, match=f"{name} applies to sampling, and do-sample is off"):
        generate(ours, [1], do_sample=False, **option)
    with pytest.raises(GenerationError, match="temperature 0 means greedy"):
        generate(ours, [1], do_sample=True, temperature=0)
