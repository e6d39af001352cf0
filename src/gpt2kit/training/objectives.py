"""Objectives: a batch in, the loss to minimise out.

An objective is an nn.Module that holds the model, so that DDP or FSDP can wrap the one
module whose forward runs both the model and the loss. The trainer calls it and nothing
else computes a loss. Evaluation asks it for (summed loss, counted tokens) instead of the
mean, so that a loss over many batches weighs every token alike.
"""

from __future__ import annotations

import torch
from torch import nn

from gpt2kit.data.batch import Batch
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.training.loss import linear_cross_entropy_sum, mean_over


class Objective(nn.Module):
    """Subclasses give `totals`; the loss is their mean (0, not NaN, when nothing counts)."""

    def totals(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, number of counted tokens) of one batch."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> torch.Tensor:
        return mean_over(*self.totals(batch))


class LanguageModeling(Objective):
    """Next-token negative log-likelihood of `model` on the labelled positions of a batch."""

    def __init__(self, model: GPT2) -> None:
        super().__init__()
        self.model = model

    def totals(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.model.hidden_states(batch.input_ids, attention_mask=batch.attention_mask)  # (B, T, C)
        return linear_cross_entropy_sum(h, self.model.head_weight, batch.labels)


def lm_loss(model: GPT2, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean loss LanguageModeling trains on, for callers holding a bare model and tensors
    (benchmarks, parity tests); inputs and labels (B, T)."""
    return LanguageModeling(model)(Batch(input_ids, labels))
