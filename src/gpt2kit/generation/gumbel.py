"""Differentiable decoding with Gumbel-softmax samples (Texar's GumbelSoftmaxEmbeddingHelper).

Each step draws a relaxed one-hot sample y = softmax((logits + Gumbel noise) / tau) and
feeds the model the matching mixture of token embeddings, y @ wte, instead of a token id.
Gradients flow from whatever is computed on the samples back into the model, which is what
adversarial and reinforcement-style training of GPT-2 uses. With `hard`, the samples are
exactly one-hot in the forward pass (straight-through gradients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gpt2kit.errors import GenerationError
from gpt2kit.generation.sampling import gumbel_softmax
from gpt2kit.model.gpt2 import GPT2


@dataclass
class GumbelSoftmaxOutput:
    token_ids: torch.Tensor  # (B, T) argmax of each sample
    soft_tokens: torch.Tensor  # (B, T, V) the relaxed one-hot samples, differentiable


def gumbel_softmax_decode(
    model: GPT2,
    input_ids: Sequence[Sequence[int]] | torch.Tensor,
    *,
    max_new_tokens: int,
    tau: float = 1.0,
    hard: bool = False,
    seed: int | None = None,
) -> GumbelSoftmaxOutput:
    """Decode `max_new_tokens` steps from equal-length prompts (B, P), keeping the graph."""
    ids = torch.as_tensor(input_ids, dtype=torch.long, device=model.device)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if tau <= 0:
        raise GenerationError(f"tau must be > 0, got {tau}")
    if max_new_tokens < 1 or ids.shape[1] + max_new_tokens > model.config.n_positions:
        raise GenerationError(f"prompt ({ids.shape[1]}) + max-new-tokens ({max_new_tokens}) must fit in the "
                              f"context of {model.config.n_positions}")
    generator = torch.Generator(device=model.device)
    generator.manual_seed(seed) if seed is not None else generator.seed()
    # The whole sequence is re-run each step: the KV cache writes in place, which autograd
    # cannot differentiate through.
    embeds = model.wte(ids)  # (B, P, C)
    samples = []
    for _ in range(max_new_tokens):
        logits = model(inputs_embeds=embeds, last_only=True)[:, -1]  # (B, V)
        y = gumbel_softmax(logits.float(), tau, hard, generator).to(embeds.dtype)
        samples.append(y)
        embeds = torch.cat([embeds, (y @ model.wte.weight).unsqueeze(1)], dim=1)
    soft = torch.stack(samples, dim=1)
    return GumbelSoftmaxOutput(soft.argmax(dim=-1), soft)
