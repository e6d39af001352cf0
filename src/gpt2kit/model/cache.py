"""A preallocated key/value cache for incremental decoding.

One tensor holds every layer's keys and values, allocated once for the longest
sequence the caller will decode, so a decode step writes in place and never
re-allocates (torch.cat per step is what makes naive KV caches slow).
"""

from __future__ import annotations

import torch

from gpt2kit.config import GPT2Config


class KVCache:
    def __init__(
        self,
        config: GPT2Config,
        batch_size: int,
        max_length: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.max_length = max_length or config.n_positions
        # (n_layer, 2, B, H, max_length, head_dim): index 0 keys, 1 values.
        self.kv = torch.zeros(
            config.n_layer, 2, batch_size, config.n_head, self.max_length, config.head_dim,
            device=device, dtype=dtype,
        )
        self.length = 0  # tokens already stored, identical for every layer

    @property
    def batch_size(self) -> int:
        return self.kv.shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, T, D) after the cached tokens; return all keys and values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_length:
            raise ValueError(f"KV cache overflow: {end} tokens > capacity {self.max_length}")
        self.kv[layer, 0, :, :, start:end] = k
        self.kv[layer, 1, :, :, start:end] = v
        return self.kv[layer, 0, :, :, :end], self.kv[layer, 1, :, :, :end]

    def advance(self, n_tokens: int) -> None:
        """Called by the model once every layer has stored the step's tokens."""
        self.length += n_tokens

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search picks which hypotheses survive)."""
        self.kv = self.kv.index_select(2, index.to(self.kv.device))

    def reset(self) -> None:
        self.length = 0

    def merge(self, other: KVCache) -> None:
        """Append `other`'s rows after these, every row ending in the last column: the shorter
        cache's rows get padding columns in front (the caller masks them). Capacity: the larger
        of the two."""
        length = max(self.length, other.length)
        capacity = max(self.max_length, other.max_length, length)
        L, _, B, H, _, D = self.kv.shape
        kv = self.kv.new_zeros(L, 2, B + other.batch_size, H, capacity, D)  # (layers, k/v, B, nh, T, hs)
        kv[:, :, :B, :, length - self.length:length] = self.kv[..., :self.length, :]
        kv[:, :, B:, :, length - other.length:length] = other.kv[..., :other.length, :]
        self.kv, self.length, self.max_length = kv, length, capacity

    def trim(self, columns: int) -> None:
        """Forget the first `columns` columns of every row (padding for all of them)."""
        if columns:
            self.kv[..., :self.length - columns, :] = self.kv[..., columns:self.length, :].clone()
            self.length -= columns

    def grow(self, max_length: int) -> None:
        """Room for at least `max_length` tokens per row (a server's rows outlive the length
        their batch was allocated for)."""
        if max_length > self.max_length:
            kv = self.kv.new_zeros(*self.kv.shape[:4], max_length, self.kv.shape[5])
            kv[..., :self.length, :] = self.kv[..., :self.length, :]
            self.kv, self.max_length = kv, max_length
