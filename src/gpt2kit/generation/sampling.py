"""Choosing the next token from processed logits (B, V) -> (B,)."""

from __future__ import annotations

import torch


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw from softmax(logits)."""
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


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
