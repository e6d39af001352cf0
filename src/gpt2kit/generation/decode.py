"""Decoding loops: a generator that yields the next token of every sample, step by step.

The prompt is run once to fill a preallocated KV cache; each later step feeds one
token. When a sequence would outgrow the model's context, the window slides: the
cache is refilled from the last three quarters of the context and decoding goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from gpt2kit.errors import GenerationError
from gpt2kit.generation import logits as logits_steps
from gpt2kit.generation.sampling import greedy, sample
from gpt2kit.generation.settings import GenerationSettings, settings_from
from gpt2kit.model.gpt2 import GPT2


def prompt_ids(input_ids: Sequence[int] | torch.Tensor, model: GPT2) -> list[int]:
    """One prompt as a list of ids, checked against the model's vocabulary and context."""
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() == 2 and input_ids.shape[0] == 1:
            input_ids = input_ids[0]
        if input_ids.dim() != 1:
            raise GenerationError(f"input_ids must be one prompt (T,) or (1, T), got shape {tuple(input_ids.shape)}")
        input_ids = input_ids.tolist()
    ids = [int(i) for i in input_ids]
    if not ids:
        raise GenerationError("the prompt is empty: give at least one token (unconditional samples start from "
                              "<|endoftext|>)")
    vocab, ctx = model.config.vocab_size, model.config.n_positions
    bad = next((i for i in ids if not 0 <= i < vocab), None)
    if bad is not None:
        raise GenerationError(f"prompt token id {bad} is outside the vocabulary (0..{vocab - 1})")
    if len(ids) >= ctx:
        raise GenerationError(f"the prompt has {len(ids)} tokens; the model's context of {ctx} leaves no room "
                              "to generate")
    return ids


@torch.no_grad()
def _next_logits(model: GPT2, ids: torch.Tensor, cache) -> torch.Tensor:
    return model(ids, cache=cache, last_only=True)[:, -1].float()  # (B, V)


def decode(
    model: GPT2, input_ids: Sequence[int] | torch.Tensor, settings: GenerationSettings
) -> Iterator[torch.Tensor]:
    """Yield the next token of each of `settings.num_samples` samples, shape (B,), per step.

    Samples that emitted `eos_token_id` keep receiving it until all have stopped.
    """
    prompt = prompt_ids(input_ids, model)
    if settings.max_new_tokens == 0:
        return
    B, P, ctx = settings.num_samples, len(prompt), model.config.n_positions
    device = model.device
    tokens = torch.empty(B, P + settings.max_new_tokens, dtype=torch.long, device=device)
    tokens[:, :P] = torch.tensor(prompt, device=device)
    cache = model.new_cache(B, min(P + settings.max_new_tokens, ctx))
    generator = None
    if not settings.greedy:
        generator = torch.Generator(device=device)
        if settings.seed is not None:
            generator.manual_seed(settings.seed)
        else:
            generator.seed()
    steps = logits_steps.pipeline(settings)
    eos = settings.eos_token_id
    finished = torch.zeros(B, dtype=torch.bool, device=device)

    logits = _next_logits(model, tokens[:, :P], cache)
    n = P
    for i in range(settings.max_new_tokens):
        scores = logits_steps.apply(steps, tokens[:, :n], logits)
        nxt = greedy(scores) if generator is None else sample(scores, generator)
        if eos is not None:
            nxt = nxt.masked_fill(finished, eos)
            finished |= nxt == eos
        tokens[:, n] = nxt
        n += 1
        yield nxt
        if i == settings.max_new_tokens - 1 or (eos is not None and bool(finished.all())):
            return
        if cache.length == cache.max_length:
            keep = ctx * 3 // 4
            cache.reset()
            logits = _next_logits(model, tokens[:, n - keep:n], cache)
        else:
            logits = _next_logits(model, nxt[:, None], cache)


def generate(model: GPT2, input_ids: Sequence[int] | torch.Tensor, **settings: Any) -> list[list[int]]:
    """Generated token ids (prompt excluded) of each sample. A sample that stopped on
    `eos_token_id` ends with that id. Settings: see GenerationSettings."""
    config = settings_from(settings)
    out: list[list[int]] = [[] for _ in range(config.num_samples)]
    done = [False] * config.num_samples
    for nxt in decode(model, input_ids, config):
        for row, token in enumerate(nxt.tolist()):
            if not done[row]:
                out[row].append(token)
                done[row] = token == config.eos_token_id
    return out
