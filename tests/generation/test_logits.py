"""Each logits step against transformers' processor or warper on the same ids and logits."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from gpt2kit.generation import GenerationSettings
from gpt2kit.generation import logits as steps

V = 50257


def random_case(seed: int = 0, rows: int = 4, length: int = 40):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, V, generator=gen) * 3
    # small id range, so that repeats and repeated n-grams occur
    ids = torch.randint(0, 30, (rows, length), generator=gen)
    return ids, logits


CASES = [
    ("temperature", lambda: steps.temperature(0.7), lambda: TemperatureLogitsWarper(0.7)),
    ("top-k", lambda: steps.top_k(40), lambda: TopKLogitsWarper(40)),
    ("top-k-1", lambda: steps.top_k(1), lambda: TopKLogitsWarper(1)),
    ("top-p", lambda: steps.top_p(0.9), lambda: TopPLogitsWarper(0.9)),
    ("top-p-small", lambda: steps.top_p(0.05), lambda: TopPLogitsWarper(0.05)),
    ("typical-p", lambda: steps.typical_p(0.9), lambda: TypicalLogitsWarper(0.9)),
    ("typical-p-small", lambda: steps.typical_p(0.2), lambda: TypicalLogitsWarper(0.2)),
    ("min-p", lambda: steps.min_p(0.1), lambda: MinPLogitsWarper(0.1)),
    ("repetition", lambda: steps.repetition_penalty(1.3), lambda: RepetitionPenaltyLogitsProcessor(1.3)),
    ("repetition<1", lambda: steps.repetition_penalty(0.8), lambda: RepetitionPenaltyLogitsProcessor(0.8)),
    ("no-repeat-2", lambda: steps.no_repeat_ngram(2), lambda: NoRepeatNGramLogitsProcessor(2)),
    ("no-repeat-3", lambda: steps.no_repeat_ngram(3), lambda: NoRepeatNGramLogitsProcessor(3)),
    ("no-repeat-1", lambda: steps.no_repeat_ngram(1), lambda: NoRepeatNGramLogitsProcessor(1)),
    ("bad-tokens", lambda: steps.ban_tokens([5, 7, 50256]),
     lambda: NoBadWordsLogitsProcessor([[5], [7], [50256]], eos_token_id=None)),
    ("min-new-tokens", lambda: steps.min_new_tokens(50, 30, [50256]),
     lambda: MinNewTokensLengthLogitsProcessor(30, 50, 50256)),
]


@pytest.mark.parametrize("name,make_ours,make_ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("seed", [0, 1])
def test_step_matches_transformers(name, make_ours, make_ref, seed):
    ids, logits = random_case(seed)
    before = logits.clone()
    ours = make_ours()(ids, logits)
    ref = make_ref()(ids, logits.clone())
    assert torch.equal(logits, before)  # steps never modify their input
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    finite = torch.isfinite(ref)
    assert torch.allclose(ours[finite], ref[finite], atol=1e-6)
    if torch.isinf(ref).any():
        assert torch.isinf(ours).any()  # the case really filtered something


@pytest.mark.parametrize("k,p", [(40, 0.9), (5, 0.5), (3000, 0.95)])
@pytest.mark.parametrize("seed", [0, 1])
def test_top_p_after_top_k_matches_transformers(k, p, seed):
    """After top-k, top-p sorts the k survivors only (when they are few): the same tokens survive."""
    ids, logits = random_case(seed)
    logits[0, 100:103] = logits[0, :100].max() + 1  # ties among the survivors
    ours = steps.top_p(p)(ids, steps.top_k(k)(ids, logits))
    ref = TopPLogitsWarper(p)(ids, TopKLogitsWarper(k)(ids, logits.clone()))
    assert torch.equal(torch.isinf(ours), torch.isinf(ref)) and torch.equal(ours[torch.isfinite(ours)],
                                                                             ref[torch.isfinite(ref)])


@pytest.mark.parametrize("make_step", [lambda: steps.repetition_penalty(1.5), lambda: steps.no_repeat_ngram(2),
                                       lambda: steps.no_repeat_ngram(4)])
def test_padding_is_never_penalised(make_step):
    ids, logits = random_case(rows=1, length=10)
    padded = torch.cat([torch.full((1, 5), V), ids], dim=1)  # V marks left padding
    step = make_step()
    assert torch.equal(step(padded, logits), step(ids, logits))


def test_frequency_and_presence_penalties():
    logits = torch.zeros(1, V)
    ids = torch.tensor([[1, 2, 3, 3, 3, 4]])  # prompt width 2: generated are 3, 3, 3, 4
    out = steps.frequency_presence_penalty(0.5, 0.25, prompt_width=2)(ids, logits)
    assert out[0, 3].item() == pytest.approx(-(0.5 * 3 + 0.25))
    assert out[0, 4].item() == pytest.approx(-(0.5 + 0.25))
    assert out[0, 1].item() == 0 and out[0, 2].item() == 0  # prompt tokens are not penalised


def test_pipeline_order_and_greedy_shortcut():
    s = GenerationSettings(temperature=0.5, top_k=10, top_p=0.9, repetition_penalty=1.2)
    assert len(steps.pipeline(s, 4)) == 4
    greedy = GenerationSettings(temperature=0, top_k=10, repetition_penalty=1.2)
    assert len(steps.pipeline(greedy, 4)) == 1  # filters cannot change an argmax


def test_user_hook_runs():
    calls = []

    def hook(ids, logits):
        calls.append(ids.shape)
        return logits.masked_fill(torch.arange(logits.shape[-1]) != 42, float("-inf"))

    from gpt2kit import generate
    from helpers import random_model

    out = generate(random_model(), [1, 2, 3], max_new_tokens=4, logits_hooks=[hook], seed=0)
    assert out == [[42, 42, 42, 42]]
    assert calls[0] == (1, 3) and calls[-1] == (1, 6)
