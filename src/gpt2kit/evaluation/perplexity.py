"""Perplexity: exp of the mean negative log-likelihood of a text's tokens, each given the ones before it.

The log-probabilities come from `score` (windows of the context, half a context apart, past the
model's context). The first token of a text has nothing before it and is not counted.
`heldout_text()` is the end of the King James Bible that the shipped model never trained on (its
validation split: the last 2% of the tokens, 20,491 tokens), for checks such as int8 against fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

from gpt2kit.backends.decoder import Decoder
from gpt2kit.evaluation.scoring import ScoringError, score

HELDOUT_NAME = "the King James Bible's held-out end (the shipped model's validation split)"


@dataclass(frozen=True)
class Perplexity:
    tokens: int  # tokens counted (all but the first)
    nll: float  # mean negative log-likelihood, nats per token

    @property
    def value(self) -> float:
        return math.exp(self.nll)


def perplexity(model: Decoder, text_or_ids: str | list[int], *, tokenizer=None, max_tokens: int | None = None,
               batch_size: int = 4) -> Perplexity:
    """Perplexity of `model` on one text (or its ids), its first `max_tokens` tokens when given."""
    if tokenizer is None and isinstance(text_or_ids, str):
        raise ScoringError("perplexity of a text needs its tokenizer (or pass token ids)")
    ids = tokenizer.encode(text_or_ids) if isinstance(text_or_ids, str) else list(text_or_ids)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if len(ids) < 2:
        raise ScoringError(f"perplexity needs at least 2 tokens, got {len(ids)}")
    logprobs = score(model, [ids], batch_size=batch_size)[0].logprobs[1:]
    return Perplexity(tokens=len(logprobs), nll=-math.fsum(logprobs) / len(logprobs))


def heldout_text() -> str:
    return resources.files("gpt2kit.evaluation").joinpath("data/kjv-heldout.txt").read_text(encoding="utf-8")
