"""Scoring: the log-probability of each token of given text, given the tokens before it.

This is the one place that computes log-probabilities of existing text (the server's
`echo`, evaluation, and beam results all come here); the per-token math is shared with the
decode loop (generation/logprobs.py), so a generated token scores what it was sampled with.

Texts are scored as batches of rows, right-padded: a causal model's logits at a real token
never see the padding after it, so no mask is needed and positions are the plain 0..T-1.
A text longer than the model's context is cut into windows of the context's length, each
starting `stride` tokens (default half a context) after the one before, and each window scores
only the tokens the previous one did not: a token is conditioned on every earlier token while
the text fits (at most context - 1 of them), and past that on between context - stride and
context - 1. This is the strided method of transformers' perplexity guide; a stride of the
whole context gives disjoint windows (fast, but tokens at a window's start see little, and
each window's first token, which nothing in it precedes, is not scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from gpt2kit.backends.decoder import Decoder
from gpt2kit.errors import GPT2KitError
from gpt2kit.generation.logprobs import MAX_TOP, as_dicts, token_logprobs


class ScoringError(GPT2KitError):
    """Text or ids that cannot be scored, or invalid scoring options."""


@dataclass
class Scores:
    token_ids: list[int]
    logprobs: list[float | None]  # per token; None for the first, which nothing precedes
    top_logprobs: list[dict[int, float] | None] | None  # per token when asked (None for the first)


@dataclass(frozen=True)
class Window:
    sequence: int  # which input
    begin: int  # first token run through the model
    end: int  # one past the last
    first: int  # first token scored (the ones before it are context only)


def windows(length: int, context: int, stride: int | None = None) -> list[tuple[int, int, int]]:
    """(begin, end, first scored) of the windows that score tokens 1..length-1 of a sequence."""
    stride = max(1, context // 2) if stride is None else stride
    out, begin, scored = [], 0, 1
    while scored < length:
        end = min(begin + context, length)
        # a window's first token has no context in it: with stride = context it goes unscored (as
        # in transformers' guide), so its log-probability stays None
        if max(scored, begin + 1) < end:
            out.append((begin, end, max(scored, begin + 1)))
        begin, scored = begin + stride, end
    return out


def score(model: Decoder, texts_or_ids: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]], *,
          tokenizer=None, top_logprobs: int = 0, batch_size: int = 4, stride: int | None = None,
          progress: bool = False) -> list[Scores]:
    """Per input, its token ids with the log-probability of each given the ones before it, and
    with `top_logprobs` = N > 0 the N likeliest tokens at each position.

    Inputs: a text, a list of texts (encoded with `tokenizer`, default GPT-2's), one list of
    ids, or a list of them. `batch_size` windows run per forward pass: the logits of one pass
    take batch_size x context x vocab floats. `stride` (1..context, default half the context):
    how far apart the windows of a text longer than the context start. `progress`: a bar over
    the windows.
    """
    if not isinstance(top_logprobs, int) or isinstance(top_logprobs, bool) or not 0 <= top_logprobs <= MAX_TOP:
        raise ScoringError(f"top_logprobs must be an integer in 0..{MAX_TOP}, got {top_logprobs!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ScoringError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    context = model.config.n_positions
    if stride is not None and (not isinstance(stride, int) or isinstance(stride, bool) or not 1 <= stride <= context):
        raise ScoringError(f"stride must be an integer in 1..{context} (the model's context), got {stride!r}")
    sequences = _sequences(texts_or_ids, tokenizer)
    vocab = model.config.vocab_size
    for i, ids in enumerate(sequences):
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise ScoringError(f"input {i + 1}: token id {bad} is outside the vocabulary (0..{vocab - 1})")
    results = [Scores(ids, [None] * len(ids), [None] * len(ids) if top_logprobs else None) for ids in sequences]
    todo = [Window(i, *w) for i, ids in enumerate(sequences) for w in windows(len(ids), context, stride)]
    with tqdm(total=len(todo), unit="window", desc="scoring", disable=not progress, leave=False) as bar:
        for start in range(0, len(todo), batch_size):
            _score_windows(model, todo[start:start + batch_size], results, top_logprobs)
            bar.update(len(todo[start:start + batch_size]))
    return results


def _sequences(texts_or_ids, tokenizer) -> list[list[int]]:
    if isinstance(texts_or_ids, str):
        texts_or_ids = [texts_or_ids]
    items = list(texts_or_ids)
    if not items:
        raise ScoringError("nothing to score")
    if all(isinstance(x, str) for x in items):
        if tokenizer is None:
            from gpt2kit.tokenizer import Tokenizer

            tokenizer = Tokenizer.from_pretrained()
        return [tokenizer.encode(t) for t in items]
    if all(isinstance(x, (Sequence, torch.Tensor)) and not isinstance(x, str) for x in items):
        return [[int(t) for t in ids] for ids in items]
    if all(isinstance(x, int) and not isinstance(x, bool) for x in items):
        return [items]
    raise ScoringError("score takes a text, a list of texts, a list of token ids, or a list of such lists")


@torch.no_grad()
def _score_windows(model: Decoder, batch: list[Window], results: list[Scores], top: int) -> None:
    width = max(w.end - w.begin for w in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long, device=model.device)
    for r, w in enumerate(batch):
        ids[r, :w.end - w.begin] = torch.tensor(results[w.sequence].token_ids[w.begin:w.end], dtype=torch.long)
    logits = model(ids)  # (B, width, V)
    for r, w in enumerate(batch):
        # the logits at position p predict the token at p + 1
        first, end = w.first - w.begin, w.end - w.begin
        chosen, values, top_ids = token_logprobs(logits[r, first - 1:end - 1], ids[r, first:end], top)
        result = results[w.sequence]
        result.logprobs[w.first:w.end] = chosen.tolist()
        if values is not None:
            result.top_logprobs[w.first:w.end] = as_dicts(values, top_ids)
