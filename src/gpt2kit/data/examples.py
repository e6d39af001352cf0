"""Examples: records made of parts, some trained on and some only read, padded into batches.

A summary is learnt after its article, a label after its text. An `Example` keeps the
token ids of each part and whether the model is trained to produce it (a target) or only
reads it (a source). Its row is tokens[:-1] as inputs and tokens[1:] as labels, and a label
counts only where its token belongs to a trained part.

Fitting to a context (`Example.fit`) keeps the target and cuts the source: untrained parts
lose tokens from their end, the earliest part first (an article keeps its lead, and a
"TL;DR:" part after it stays whole); only when the trained parts alone are too long is the
example cut at its end. <|endoftext|> is never added here: a caller that wants the model to
learn to stop ends its target with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gpt2kit.data.batch import IGNORE_INDEX, Batch
from gpt2kit.errors import DataError


@dataclass(frozen=True)
class Part:
    ids: tuple[int, ...]
    trained: bool  # whether the model learns to produce these tokens (a target) or only reads them

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))


@dataclass(frozen=True)
class Example:
    parts: tuple[Part, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))
        if len(self) < 2:
            raise DataError(f"an example needs at least two tokens (one to read, one to predict), got {len(self)}")

    @classmethod
    def source_target(cls, source: Sequence[int], target: Sequence[int]) -> Example:
        """Read `source`, learn `target`."""
        return cls((Part(source, False), Part(target, True)))

    def __len__(self) -> int:
        return sum(len(p.ids) for p in self.parts)

    @property
    def tokens(self) -> list[int]:
        return [i for p in self.parts for i in p.ids]

    def row(self) -> tuple[list[int], list[int]]:
        """(input ids, labels), each one shorter than the example."""
        tokens = self.tokens
        trained = [p.trained for p in self.parts for _ in p.ids]
        return tokens[:-1], [t if keep else IGNORE_INDEX for t, keep in zip(tokens[1:], trained[1:], strict=True)]

    def fit(self, seq_len: int) -> Example:
        """This example in at most seq_len + 1 tokens (a row of seq_len positions, as a window of
        seq_len is), cut as the module says."""
        excess = len(self) - (seq_len + 1)
        if excess <= 0:
            return self
        parts = list(self.parts)
        for i, part in enumerate(parts):
            if excess > 0 and not part.trained:
                cut = min(excess, len(part.ids))
                parts[i] = Part(part.ids[:len(part.ids) - cut], False)
                excess -= cut
        for i in reversed(range(len(parts))):  # the target is too long by itself: its end goes
            if excess > 0:
                cut = min(excess, len(parts[i].ids))
                parts[i] = Part(parts[i].ids[:len(parts[i].ids) - cut], parts[i].trained)
                excess -= cut
        return Example(tuple(p for p in parts if p.ids))


def collate(examples: Sequence[Example], pad_id: int = 0) -> Batch:
    """Examples as one batch as long as its longest row, padded on the right.

    Right padding needs no attention mask in a causal model: a real token attends only to
    the positions before it, which are all real, so padding after the last real token is
    never read by any of them, and the real tokens keep positions 0..n-1. The padding
    positions compute something, but their labels are IGNORE_INDEX, so it counts for nothing:
    a padded row has the loss it has alone. `pad_id` may be any id in the vocabulary."""
    rows = [e.row() for e in examples]
    ids = torch.full((len(rows), max(len(x) for x, _ in rows)), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full(ids.shape, IGNORE_INDEX, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
    return Batch(ids, labels)


class ExampleSampler:
    """Batches of examples in a shuffled order, a new one each epoch. An epoch's order follows
    from the seed and the epoch alone, so (epoch, position) is the sampler's whole state:
    saving and restoring it resumes the same sequence. A batch that reaches the end of an
    epoch is filled from the next, so every example is seen once an epoch and every batch is
    full. An item may also be a tuple of variants of one example (an article with each of its
    highlights as the target): each epoch uses one, drawn from the seed, the epoch and the item."""

    def __init__(self, examples: Sequence[Example | tuple[Example, ...]], batch_size: int, seed: int, *,
                 pad_id: int = 0) -> None:
        if not examples:
            raise DataError("no examples to train on")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.examples, self.batch_size, self.seed, self.pad_id = list(examples), batch_size, seed, pad_id
        self.epoch, self.position = 0, 0
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its order), drawn once an epoch

    @property
    def batches_per_epoch(self) -> int:
        return len(self.examples) // self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        """The indices of the examples in the order of `epoch`."""
        if self._order is None or self._order[0] != epoch:
            self._order = epoch, np.random.default_rng([self.seed % 2**64, epoch]).permutation(len(self.examples))
        return self._order[1]

    def example(self, index: int, epoch: int) -> Example:
        """Item `index` as epoch `epoch` sees it."""
        item = self.examples[index]
        if isinstance(item, Example):
            return item
        variant = np.random.default_rng([self.seed % 2**64, epoch, index]).integers(len(item)) if len(item) > 1 else 0
        return item[variant]

    def next_batch(self) -> Batch:
        chosen: list[Example] = []
        while len(chosen) < self.batch_size:
            taken = self.order(self.epoch)[self.position:self.position + self.batch_size - len(chosen)]
            chosen += [self.example(i, self.epoch) for i in taken.tolist()]
            self.position += len(taken)
            if self.position == len(self.examples):
                self.epoch, self.position = self.epoch + 1, 0
        return collate(chosen, self.pad_id)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def __repr__(self) -> str:
        return f"ExampleSampler({len(self.examples):,} examples, batches of {self.batch_size})"


def example_batches(examples: Sequence[Example], batch_size: int, max_batches: int | None = None,
                    pad_id: int = 0) -> Iterator[Batch]:
    """The examples in order, in batches: the same batches at every evaluation."""
    count = len(examples) if max_batches is None else min(len(examples), max_batches * batch_size)
    for first in range(0, count, batch_size):
        yield collate(examples[first:min(first + batch_size, count)], pad_id)
