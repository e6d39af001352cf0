"""The Decoder interface: what generation, beam search, scoring and the server need from a model.

A backend (PyTorch's `GPT2`, an ONNX Runtime session, ...) is usable everywhere text is
generated or scored once it has these few members: generation and evaluation reach no further
into a model (training does: it needs hidden states and weights, so it trains `GPT2`).
`GPT2` satisfies it as it is.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from gpt2kit.config import GPT2Config


@runtime_checkable
class Cache(Protocol):
    """Keys and values of the tokens run so far, for every row of a batch."""

    length: int  # tokens stored per row (the same for every row; padding is masked, not skipped)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (B',), in that order: beam search choosing which hypotheses survive."""
        ...

    def reset(self) -> None:
        """Forget every stored token (the window slid: the caller re-runs the rows it keeps)."""
        ...


@runtime_checkable
class MergingCache(Cache, Protocol):
    """A cache whose rows can come and go between steps: continuous batching (generation/rows.py)."""

    max_length: int  # tokens per row it has room for

    def merge(self, other: Cache) -> None:
        """Append `other`'s rows after these, every row's last token in the last column: the
        shorter cache's rows get padding columns in front, which the caller masks."""
        ...

    def trim(self, columns: int) -> None:
        """Forget the first `columns` columns of every row (padding in all of them)."""
        ...

    def grow(self, max_length: int) -> None:
        """Room for at least `max_length` tokens per row."""
        ...


@runtime_checkable
class Decoder(Protocol):
    """A causal language model that runs a batch of token rows through a cache.

    `config` gives the vocabulary (`vocab_size`), the context (`n_positions`) and the default
    special ids (`bos_token_id`, `eos_token_id`); `generation_config` holds the keys of the
    model's `generation_config.json` ({} when it has none), which override them. A backend that
    computes on threads of its own may also name `step_threads`: how many PyTorch should use for
    decoding's per-step work between its calls (devices.torch_threads).
    """

    config: GPT2Config
    generation_config: dict[str, Any]

    @property
    def device(self) -> torch.device: ...

    def new_cache(self, batch_size: int, max_length: int | None = None) -> Cache:
        """An empty cache for `batch_size` rows of up to `max_length` tokens (default: the context)."""
        ...

    def __call__(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None, cache: Cache | None = None,
                 last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab) for input_ids (B, T) following the `cache.length` tokens already in
        `cache` (which then holds them too); (B, 1, vocab) for the last position with `last_only`.

        attention_mask (B, cache.length + T): 1 for real tokens, 0 for padding; without
        position_ids, positions count the real tokens only, so a left-padded row sees the
        positions it would see alone.
        """
        ...
