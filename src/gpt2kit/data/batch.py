"""What training draws: batches of input ids and next-token labels, and where they come from.

Random windows of a token stream (data/dataset.py) and padded examples (data/examples.py)
both give a `Batch`, so the trainer and every objective read one type. A source of
training batches is resumable: its `state_dict()` is its position, saved in checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import torch

IGNORE_INDEX = -100  # a label that counts for no loss (as in PyTorch's cross_entropy and transformers)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (B, T)
    labels: torch.Tensor  # (B, T): the token that follows each input, IGNORE_INDEX where no loss counts
    attention_mask: torch.Tensor | None = None  # (B, T), 1 for real tokens; None: every token is real

    def __post_init__(self) -> None:
        if self.input_ids.shape != self.labels.shape or self.input_ids.dim() != 2:
            raise ValueError(f"input_ids {tuple(self.input_ids.shape)} and labels {tuple(self.labels.shape)} "
                             "must be the same (B, T)")

    def to(self, device: torch.device | str) -> Batch:
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return Batch(self.input_ids.to(device), self.labels.to(device), mask)

    @property
    def num_tokens(self) -> int:
        """Positions the model runs on (padding included: it is computed too)."""
        return self.input_ids.numel()


class BatchSource(Protocol):
    """An endless, resumable stream of training batches."""

    batch_size: int
    batches_per_epoch: int  # may be 0 for less data than one batch

    def next_batch(self) -> Batch: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainingData:
    """What a trainer draws from: training batches, the validation batches (the same at every
    evaluation; None without validation data), and a line saying what the data is."""

    train: BatchSource
    validation: Callable[[], Iterable[Batch]] | None = None
    name: str = ""

    def summary_lines(self, steps_per_epoch: int, grad_accum: int) -> list[tuple[str, str]]:
        """(label, value) lines that describe the data of a run about to start."""
        per_step = self.train.batch_size * grad_accum
        return [("data", self.name or repr(self.train)),
                ("batch", f"{self.train.batch_size} x {grad_accum} accumulation = {per_step} rows per step, "
                          f"{steps_per_epoch * per_step:,} per epoch")]
