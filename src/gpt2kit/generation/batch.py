"""A batch being decoded: left-padded token rows, their attention mask, and the KV cache.

Rows of different lengths are padded on the left, so every row's next token sits in
the same column; the mask hides padding and the model derives positions from it, which
makes each row decode exactly as it would alone. When the cache reaches the model's
context, the window slides: the last three quarters of it are re-run into a reset cache.
"""

from __future__ import annotations

import torch

from gpt2kit.model.gpt2 import GPT2


class Batch:
    def __init__(self, model: GPT2, rows: list[list[int]], new_tokens: int, pad_token_id: int) -> None:
        self.model = model
        self.width = max(len(r) for r in rows)  # padded prompt length
        self.length = self.width  # columns filled so far
        self.start = 0  # first column the cache has seen (moves when the window slides)
        device = model.device
        total = self.width + new_tokens
        self.tokens = torch.full((len(rows), total), pad_token_id, dtype=torch.long, device=device)
        self.mask = torch.zeros((len(rows), total), dtype=torch.long, device=device)
        for r, row in enumerate(rows):
            self.tokens[r, self.width - len(row):self.width] = torch.tensor(row, dtype=torch.long)
            self.mask[r, self.width - len(row):self.width] = 1
        self.padded = any(len(r) < self.width for r in rows)
        self.cache = model.new_cache(len(rows), min(total, model.config.n_positions))
        self.vocab_size = model.config.vocab_size

    def ids(self) -> torch.Tensor:
        """(B, length) tokens so far for logits steps; padding marked with vocab_size."""
        ids = self.tokens[:, :self.length]
        if self.padded:
            ids = ids.masked_fill(self.mask[:, :self.length] == 0, self.vocab_size)
        return ids

    def prefill(self) -> torch.Tensor:
        """Run the prompts; logits (B, V) of the first new token."""
        return self._forward(0, self.width)

    def append(self, next_tokens: torch.Tensor) -> torch.Tensor:
        """Add one token per row (B,); logits (B, V) of the token after it."""
        n = self.length
        self.tokens[:, n] = next_tokens
        self.mask[:, n] = 1
        self.length = n + 1
        if self.cache.length == self.cache.max_length:
            keep = self.model.config.n_positions * 3 // 4
            self.cache.reset()
            self.start = self.length - keep
            return self._forward(self.start, self.length)
        return self._forward(n, n + 1)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (beam search)."""
        self.tokens = self.tokens.index_select(0, index)
        self.mask = self.mask.index_select(0, index)
        self.cache.reorder(index)

    @torch.no_grad()
    def _forward(self, begin: int, end: int) -> torch.Tensor:
        mask = self.mask[:, self.start:end] if self.padded else None
        logits = self.model(self.tokens[:, begin:end], attention_mask=mask, cache=self.cache, last_only=True)
        return logits[:, -1].float()
