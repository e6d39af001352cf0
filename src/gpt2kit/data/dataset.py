"""Training data: tokenize once into a cached token file, then draw random windows.

The cache key fingerprints the source files (path, size, modification time), the
vocabulary and the options, so a changed source is tokenized again and an unchanged
one is read straight from its memory-mapped token file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gpt2kit.data.batch import Batch
from gpt2kit.data.shards import ShardedTokens, is_shard_folder, open_shards
from gpt2kit.data.sources import data_files, iter_documents
from gpt2kit.data.tokens import VERSION, is_token_file, open_tokens, read_header, write_tokens
from gpt2kit.errors import DataError
from gpt2kit.tokenizer import Tokenizer


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gpt2kit" / "tokens"


def fingerprint(path: str | os.PathLike, tokenizer: Tokenizer, options: str) -> bytes:
    digest = hashlib.sha256(f"v{VERSION}|{options}|{tokenizer.vocab_file.stat().st_size}|"
                            f"{tokenizer.merges_file.stat().st_size}".encode())
    for f in data_files(path):
        st = f.stat()
        digest.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.digest()


def tokenize_to_cache(path: str | os.PathLike, tokenizer: Tokenizer, *, cache_dir: str | os.PathLike | None = None,
                      text_column: str = "text", errors: str = "strict", progress: bool = True) -> Path:
    """A token file for `path` (a token file already is one), built once and reused."""
    path = Path(path)
    if path.is_file() and is_token_file(path):
        read_header(path)
        return path
    fp = fingerprint(path, tokenizer, f"{text_column}|{errors}")
    cache = Path(cache_dir or default_cache_dir()) / f"{path.name}-{fp.hex()[:16]}.tokens"
    if cache.is_file():
        try:
            if read_header(cache)[1] == fp:
                return cache
        except DataError:
            pass  # a broken cache entry is rebuilt
    total = sum(f.stat().st_size for f in data_files(path))
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"tokenizing {path.name}", disable=not progress,
               leave=False)

    def chunks() -> Iterator[np.ndarray]:
        for doc in iter_documents(path, text_column=text_column, errors=errors):
            empty = True
            for piece in doc:
                ids = tokenizer.encode(piece)
                if ids:
                    empty = False
                    yield np.asarray(ids, dtype=np.int64)
                bar.update(len(piece.encode("utf-8", errors="replace")))
            if not empty:
                yield np.asarray([tokenizer.eot_id], dtype=np.int64)

    with bar:
        count = write_tokens(cache, chunks(), fp)
    if count == 0:
        cache.unlink(missing_ok=True)
        raise DataError(f"{path}: no text to train on (the data is empty)")
    return cache


@dataclass
class Splits:
    train: np.ndarray | ShardedTokens
    val: np.ndarray | ShardedTokens | None


def load_splits(train_path: str | os.PathLike, tokenizer: Tokenizer, *, seq_len: int, val_fraction: float = 0.0,
                val_path: str | os.PathLike | None = None, **options) -> Splits:
    """Train (and validation) token arrays, each long enough for at least one window; a shard
    folder of `gpt2kit prepare` is read as it is (its ids were checked when it was written)."""
    tokens = _open(train_path, tokenizer, options)
    if isinstance(tokens, np.ndarray) and len(tokens) and int(tokens.max()) >= tokenizer.vocab_size:
        raise DataError(f"{train_path}: token id {int(tokens.max())} is outside the vocabulary (0.."
                        f"{tokenizer.vocab_size - 1})")
    if val_path is not None:
        val = _open(val_path, tokenizer, options)
        train = tokens
    elif val_fraction > 0:
        cut = int(len(tokens) * (1 - val_fraction))
        train, val = tokens.split(cut) if isinstance(tokens, ShardedTokens) else (tokens[:cut], tokens[cut:])
    else:
        train, val = tokens, None
    need = seq_len + 1
    if len(train) < need:
        raise DataError(f"{train_path}: {len(train)} training tokens, fewer than one window of --seq-len {seq_len} "
                        f"(+1); use more text or a smaller --seq-len")
    if val is not None and len(val) < need:
        raise DataError(f"validation data has {len(val)} tokens, fewer than one window of {need}; "
                        "raise --val-fraction or give a longer --val-file")
    return Splits(train, val)


def _open(path: str | os.PathLike, tokenizer: Tokenizer, options: dict) -> np.ndarray | ShardedTokens:
    if is_shard_folder(path):
        return open_shards(path)
    return open_tokens(tokenize_to_cache(path, tokenizer, **options))


class WindowSampler:
    """Random windows of seq_len + 1 tokens (inputs and shifted targets), drawn with a generator
    whose state is the sampler's position: saving and restoring it resumes the same sequence."""

    def __init__(self, tokens: np.ndarray | ShardedTokens, seq_len: int, batch_size: int, seed: int) -> None:
        self.tokens, self.seq_len, self.batch_size = tokens, seq_len, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.rows = slice(None)  # the rows of each drawn batch that are read and returned

    def select_rows(self, start: int, stop: int) -> None:
        """Draw whole batches but read only rows start..stop-1 (a rank's share: the ranks read
        disjoint windows of the data, and draw what one process draws)."""
        self.rows = slice(start, stop)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.tokens) // (self.seq_len * self.batch_size)

    def next_batch(self) -> Batch:
        starts = torch.randint(0, len(self.tokens) - self.seq_len, (self.batch_size,), generator=self.generator)
        return _windows(self.tokens, starts.tolist()[self.rows], self.seq_len)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"WindowSampler({len(self.tokens):,} tokens, {self.batch_size} windows of {self.seq_len})"


def eval_windows(tokens: np.ndarray | ShardedTokens, seq_len: int, batch_size: int,
                 max_batches: int) -> Iterator[Batch]:
    """Consecutive, non-overlapping windows from the start: the same batches at every evaluation."""
    n = min((len(tokens) - 1) // seq_len, max_batches * batch_size)
    for first in range(0, n, batch_size):
        yield _windows(tokens, [i * seq_len for i in range(first, min(first + batch_size, n))], seq_len)


def _windows(tokens: np.ndarray | ShardedTokens, starts: list[int], seq_len: int) -> Batch:
    rows = torch.from_numpy(np.stack([tokens[s:s + seq_len + 1] for s in starts]).astype(np.int64))
    return Batch(rows[:, :-1], rows[:, 1:])  # every target counts: windows hold no padding
