"""A batch being decoded: left-padded token rows, their attention mask, and the KV cache.

Rows of different lengths are padded on the left, so every row's next token sits in
the same column; the mask hides padding and the model derives positions from it, which
makes each row decode exactly as it would alone. Each row also has its own window: alone,
a row slides when its own tokens fill the model's context, keeping the last three quarters
of them. Padded rows fill up later than the longest one, so in a batch a row slides at its
own step, its window start moves, and the columns before it are masked for that row; every
slide re-runs all rows' windows into a reset cache (the cache spans the widest window).
"""

from __future__ import annotations

import torch

from gpt2kit.backends.decoder import Decoder


class Batch:
    def __init__(self, model: Decoder, rows: list[list[int]], new_tokens: int, pad_token_id: int) -> None:
        self.model = model
        self.width = max(len(r) for r in rows)  # padded prompt length
        self.length = self.width  # columns filled so far
        self.start = 0  # first column the cache holds: the earliest row window start
        device = model.device
        total = self.width + new_tokens
        self.tokens = torch.full((len(rows), total), pad_token_id, dtype=torch.long, device=device)
        self.mask = torch.zeros((len(rows), total), dtype=torch.long, device=device)
        for r, row in enumerate(rows):
            self.tokens[r, self.width - len(row):self.width] = torch.tensor(row, dtype=torch.long)
            self.mask[r, self.width - len(row):self.width] = 1
        self.padded = any(len(r) < self.width for r in rows)
        # (B,) first column of each row's window: its first real token, until it slides
        self.starts = torch.tensor([self.width - len(r) for r in rows], dtype=torch.long, device=device)
        self.window = self.mask.clone()  # (B, total): the mask, less the columns before each row's window
        self.vocab_size = model.config.vocab_size
        # rows that repeat an earlier one (samples of one prompt, beams) are prefilled once, then copied
        first: dict[tuple[int, ...], int] = {}  # prompt -> its number among the distinct ones
        self.distinct: list[int] = []  # the first row of each distinct prompt
        copies = []
        for r, row in enumerate(rows):
            if tuple(row) not in first:
                first[tuple(row)] = len(self.distinct)
                self.distinct.append(r)
            copies.append(first[tuple(row)])
        self.copies = torch.tensor(copies, dtype=torch.long, device=device)  # row -> its distinct prompt
        self.cache = model.new_cache(len(self.distinct), min(total, model.config.n_positions))

    def ids(self) -> torch.Tensor:
        """(B, length) tokens so far for logits steps; padding marked with vocab_size."""
        ids = self.tokens[:, :self.length]
        if self.padded:
            ids = ids.masked_fill(self.mask[:, :self.length] == 0, self.vocab_size)
        return ids

    def prefill(self) -> torch.Tensor:
        """Run the prompts; logits (B, V) of the first new token. A prompt that several rows share
        runs once: its keys and values are copied into every row that repeats it."""
        if len(self.distinct) == len(self.copies):
            return self._forward(0, self.width)
        logits = self._forward(0, self.width, torch.tensor(self.distinct, device=self.copies.device))
        self.cache.reorder(self.copies)
        return logits.index_select(0, self.copies)

    def append(self, next_tokens: torch.Tensor) -> torch.Tensor:
        """Add one token per row (B,); logits (B, V) of the token after it."""
        n = self.length
        self.tokens[:, n] = next_tokens
        self.mask[:, n] = 1
        self.window[:, n] = 1
        self.length = n + 1
        ctx = self.model.config.n_positions
        if n - self.start >= ctx:  # the widest window is full
            full = n - self.starts >= ctx  # rows whose window has no room for the new token
            self.starts[full] = self.length - ctx * 3 // 4
            self.window[full, :self.length - ctx * 3 // 4] = 0
            self.start = int(self.starts.min())
            self.cache.reset()
            return self._forward(self.start, self.length)
        return self._forward(n, n + 1)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (beam search)."""
        self.tokens = self.tokens.index_select(0, index)
        self.mask = self.mask.index_select(0, index)
        self.starts = self.starts.index_select(0, index)
        self.window = self.window.index_select(0, index)
        self.cache.reorder(index)

    @torch.no_grad()
    def _forward(self, begin: int, end: int, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, V) after columns begin..end of every row (of `rows` only, when given)."""
        tokens, window = (self.tokens, self.window) if rows is None else (self.tokens[rows], self.window[rows])
        # rows without padding share one window, whose positions count from the cache start
        mask = window[:, self.start:end] if self.padded else None
        logits = self.model(tokens[:, begin:end], attention_mask=mask, cache=self.cache, last_only=True)
        return logits[:, -1].float()
