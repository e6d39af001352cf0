"""Logits steps: small functions (ids, logits) -> logits, each returning a new tensor.

`ids` is (B, T) with every token so far, `logits` (B, V) for the next token. Steps
run in the order `pipeline` lists them, the order transformers applies its warpers:
temperature, then top-k, then top-p.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gpt2kit.generation.settings import GenerationSettings

LogitsStep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def temperature(t: float) -> LogitsStep:
    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / t

    return step


def top_k(k: int) -> LogitsStep:
    """Keep the k most likely tokens (ties at the k-th value are kept too)."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))

    return step


def top_p(p: float, min_tokens_to_keep: int = 1) -> LogitsStep:
    """Keep the smallest set of most likely tokens whose probability reaches p."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum <= 1 - p  # ascending order: the unlikely tail whose mass is <= 1 - p
        drop[..., -min_tokens_to_keep:] = False
        return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))

    return step


def pipeline(settings: GenerationSettings) -> list[LogitsStep]:
    """The steps that `settings` asks for, in application order."""
    steps: list[LogitsStep] = []
    if settings.greedy:
        return steps  # argmax is unchanged by temperature and filters
    if settings.temperature != 1.0:
        steps.append(temperature(settings.temperature))
    if settings.top_k > 0:
        steps.append(top_k(settings.top_k))
    if settings.top_p < 1.0:
        steps.append(top_p(settings.top_p))
    return steps


def apply(steps: list[LogitsStep], ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    for step in steps:
        logits = step(ids, logits)
    return logits
