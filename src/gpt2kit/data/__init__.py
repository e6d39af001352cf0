"""Training data: files -> documents -> cached token file -> random windows."""

from gpt2kit.data.dataset import WindowSampler, load_splits, tokenize_to_cache
from gpt2kit.data.tokens import open_tokens, write_tokens

__all__ = ["WindowSampler", "load_splits", "open_tokens", "tokenize_to_cache", "write_tokens"]
