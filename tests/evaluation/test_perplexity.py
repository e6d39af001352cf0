"""perplexity() against transformers' own loss on the same random weights: a text within the context
(one forward pass, transformers' mean cross-entropy) and one past it, which transformers runs with
the strided recipe of its perplexity guide (windows of the context, half a context apart, labels
-100 on the tokens the previous window already counted)."""

from __future__ import annotations

import math

import pytest
import torch

from gpt2kit import Tokenizer, perplexity
from gpt2kit.evaluation import heldout_text
from gpt2kit.evaluation.scoring import ScoringError
from helpers import hf_pair, tiny_config


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return hf_pair(tmp_path_factory.mktemp("ppl"), tiny_config(n_positions=32), seed=3)


def hf_strided_nll(hf, ids: list[int], context: int) -> float:
    """Mean negative log-likelihood of tokens 1.. of ids, the way transformers' guide computes it."""
    seq = torch.tensor([ids])
    total, count, previous_end = 0.0, 0, 0
    for begin in range(0, len(ids), context // 2):
        end = min(begin + context, len(ids))
        labels = seq[:, begin:end].clone()
        labels[:, :-(end - previous_end)] = -100  # counted by the window before
        with torch.no_grad():
            loss = hf(seq[:, begin:end], labels=labels).loss  # mean over the labels that count
        counted = int((labels[:, 1:] != -100).sum())
        total, count, previous_end = total + loss.item() * counted, count + counted, end
        if end == len(ids):
            break
    return total / count


def test_within_the_context_is_transformers_loss(pair):
    hf, ours = pair
    ids = Tokenizer.from_pretrained().encode("In the beginning God created the heaven and the earth.")
    with torch.no_grad():
        expected = hf(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    result = perplexity(ours, ids)
    assert result.tokens == len(ids) - 1
    assert result.nll == pytest.approx(expected, abs=1e-5)
    assert result.value == pytest.approx(math.exp(expected), rel=1e-5)


def test_past_the_context_is_transformers_strided_recipe(pair):
    hf, ours = pair
    tok = Tokenizer.from_pretrained()
    ids = tok.encode(heldout_text()[:1500])[:150]  # about 5 contexts of 32
    assert len(ids) == 150
    result = perplexity(ours, heldout_text()[:1500], tokenizer=tok, max_tokens=150)
    assert result.tokens == 149
    assert result.nll == pytest.approx(hf_strided_nll(hf, ids, 32), abs=1e-5)


def test_heldout_text_is_the_shipped_models_validation_split():
    ids = Tokenizer.from_pretrained().encode(heldout_text())
    assert len(ids) == 20_491  # the last 2% of the 1,024,544 tokens it trained on (--val-fraction 0.02)
    assert heldout_text().rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")


def test_bad_input(pair):
    _, ours = pair
    with pytest.raises(ScoringError, match="needs its tokenizer"):
        perplexity(ours, "text without a tokenizer")
    with pytest.raises(ScoringError, match="at least 2 tokens"):
        perplexity(ours, [464])
