"""Choosing the next token from processed logits (B, V) -> (B,)."""

from __future__ import annotations

import torch


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def candidates(logits: torch.Tensor) -> int | None:
    """The largest number of tokens not at -inf in a row, when it is a small part of the vocabulary
    (after top-k), so that a step may work on those alone; None otherwise."""
    kept = int((logits > float("-inf")).sum(dim=-1).max())
    return kept if 0 < kept <= logits.shape[-1] // 16 else None


def sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw from softmax(logits). When top-k (or another filter) left a few tokens, the draw is among
    those: the same distribution, for a fraction of the work on 50,257 entries a row."""
    kept = candidates(logits)
    if kept is None:
        probs = torch.softmax(logits.float(), dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
    values, ids = torch.topk(logits.float(), kept, dim=-1)
    choice = torch.multinomial(torch.softmax(values, dim=-1), num_samples=1, generator=generator)
    return ids.gather(-1, choice).squeeze(-1)


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard Gumbel samples -log(-log U)."""
    u = torch.rand(shape, generator=generator, device=device).clamp_(min=1e-20, max=1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def gumbel_max(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The Gumbel-max trick: argmax(logits + Gumbel noise) is distributed as softmax(logits)."""
    return (logits.float() + gumbel_noise(logits.shape, generator, logits.device)).argmax(dim=-1)


def gumbel_softmax(
    logits: torch.Tensor, tau: float = 1.0, hard: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A relaxed one-hot sample (B, V), differentiable in `logits`. With `hard`, the forward
    value is exactly one-hot and the gradient is the soft sample's (straight-through)."""
    soft = ((logits + gumbel_noise(logits.shape, generator, logits.device).to(logits.dtype)) / tau).softmax(dim=-1)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    return one_hot - soft.detach() + soft


CHOOSERS = {"multinomial": sample, "gumbel": gumbel_max}
