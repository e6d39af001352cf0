"""score() against transformers' log-softmax on the same random weights: a padded batch of texts,
and a text longer than the context, which transformers runs window by window the same way."""

from __future__ import annotations

import pytest
import torch

from gpt2kit import Tokenizer, score
from gpt2kit.evaluation.scoring import ScoringError
from helpers import hf_pair, tiny_config

TOL = 1e-5
TEXTS = ["In the beginning God created the heaven and the earth.", "And God said", "Let there be light"]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained()


def hf_logprobs(hf, ids: list[int]) -> torch.Tensor:
    """(T - 1, V) log-softmax predicting tokens 1..T-1."""
    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)


def check(result, reference: torch.Tensor) -> None:
    ids = torch.tensor(result.token_ids[1:])
    assert result.logprobs[0] is None
    assert (torch.tensor(result.logprobs[1:]) - reference.gather(1, ids[:, None])[:, 0]).abs().max() <= TOL
    if result.top_logprobs is not None:
        assert result.top_logprobs[0] is None
        for top, row in zip(result.top_logprobs[1:], reference, strict=True):
            values, best = row.topk(len(top))
            assert list(top) == best.tolist()
            assert (torch.tensor(list(top.values())) - values).abs().max() <= TOL


def test_a_padded_batch_matches_transformers(tmp_path, tok):
    hf, ours = hf_pair(tmp_path, tiny_config(n_positions=64))
    results = score(ours, TEXTS, tokenizer=tok, top_logprobs=4, batch_size=2)
    for text, result in zip(TEXTS, results, strict=True):
        assert result.token_ids == tok.encode(text)
        check(result, hf_logprobs(hf, result.token_ids))


def test_a_text_past_the_context_is_scored_in_half_overlapping_windows(tmp_path, tok):
    ctx = 32
    hf, ours = hf_pair(tmp_path, tiny_config(n_positions=ctx))
    ids = tok.encode(" ".join(TEXTS * 6))
    assert len(ids) > 3 * ctx
    reference, scored = [], 1
    for begin in range(0, len(ids), ctx // 2):  # windows of ctx tokens, half a context apart
        if scored >= len(ids):
            break
        window = ids[begin:begin + ctx]
        reference.append(hf_logprobs(hf, window)[scored - begin - 1:])  # only tokens not yet scored
        scored = begin + len(window)
    (result,) = score(ours, ids, top_logprobs=2, batch_size=3)
    check(result, torch.cat(reference))
    # the first window is the text's first ctx tokens: the values they have alone
    (whole,) = score(ours, ids[:ctx])
    assert whole.logprobs == pytest.approx(result.logprobs[:ctx], abs=TOL)


def test_bad_inputs(tiny_model):
    with pytest.raises(ScoringError, match="outside the vocabulary"):
        score(tiny_model, [[1, 50257]])
    with pytest.raises(ScoringError, match="top_logprobs"):
        score(tiny_model, [[1, 2]], top_logprobs=21)
    with pytest.raises(ScoringError, match="nothing to score"):
        score(tiny_model, [])
