"""A batch whose rows come and go between decode steps: continuous batching.

Rows are right-aligned: every row's newest token sits in the last column and shorter rows are
padded in front, masked, so each row sees the positions it would see alone (the model counts
positions from the mask). New rows are prefilled together in one forward pass into a cache of
their own, which is then merged in; a prompt asked for several times is run once and its
cache rows copied. When rows leave, the leading columns that are padding in every remaining
row are dropped, so the batch is never wider than its longest row.
"""

from __future__ import annotations

import torch

from gpt2kit.backends.decoder import Decoder, MergingCache


class RowBatch:
    def __init__(self, model: Decoder) -> None:
        self.model = model
        self.cache: MergingCache | None = None
        self.mask = torch.zeros(0, 0, dtype=torch.long, device=model.device)  # (B, columns): 1 = real token

    @property
    def size(self) -> int:
        return self.mask.shape[0]

    @torch.no_grad()
    def add(self, prompts: list[list[int]], copies: list[int]) -> torch.Tensor:
        """Append prompt i as copies[i] rows, after the rows already here; logits (rows, V) of
        each new row's first token."""
        device = self.model.device
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.long, device=device)
        mask = torch.zeros(len(prompts), width, dtype=torch.long, device=device)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = 1
        cache = self.model.new_cache(len(prompts), width)
        padded = bool((mask == 0).any())
        logits = self.model(ids, attention_mask=mask if padded else None, cache=cache, last_only=True)[:, -1]
        index = torch.repeat_interleave(torch.arange(len(prompts), device=device),
                                        torch.tensor(copies, device=device))
        if len(index) != len(prompts) or bool((index != torch.arange(len(prompts), device=device)).any()):
            cache.reorder(index)  # a prompt asked for n times is run once
            logits, mask = logits.index_select(0, index), mask.index_select(0, index)
        if self.cache is None:
            self.cache, self.mask = cache, mask
        else:
            columns = max(self.mask.shape[1], width)
            self.mask = torch.cat([_pad_front(self.mask, columns), _pad_front(mask, columns)])
            self.cache.merge(cache)
        return logits.float()

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (B,); logits (B, V) of the token after it."""
        assert self.cache is not None, "no rows"
        length = self.cache.length + 1
        if length > self.cache.max_length:  # doubling: the copies cost O(length) per token on average
            self.cache.grow(min(max(2 * self.cache.max_length, length), self.model.config.n_positions))
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        padded = bool((self.mask == 0).any())
        logits = self.model(tokens.view(-1, 1), attention_mask=self.mask if padded else None, cache=self.cache,
                            last_only=True)
        return logits[:, -1].float()

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows`, in that order; the columns no kept row uses are dropped."""
        if not rows:
            self.cache, self.mask = None, self.mask[:0, :0]
            return
        assert self.cache is not None
        if rows != list(range(self.size)):
            index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
            self.cache.reorder(index)
            self.mask = self.mask.index_select(0, index)
        unused = int(self.mask.any(dim=0).long().argmax())  # first column some row uses
        if unused:
            self.cache.trim(unused)
            self.mask = self.mask[:, unused:]


def _pad_front(mask: torch.Tensor, columns: int) -> torch.Tensor:
    return torch.nn.functional.pad(mask, (columns - mask.shape[1], 0))
