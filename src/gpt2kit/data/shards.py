"""A shard folder: a corpus tokenized by `gpt2kit prepare` into numbered token files.

DIR/manifest.json lists the shards in order (name, token count) with the source's
fingerprint and where in the source each shard ends (for resuming); each shard is a token
file of data/tokens.py whose header fingerprint ties it to the manifest. `open_shards`
checks them all (present, complete, of this preparation) and gives one token sequence over
them, memory-mapped: a window may span two shards, and reading a window touches only its
own bytes, so ranks that draw different windows read disjoint parts of the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gpt2kit.data.tokens import open_tokens, read_header
from gpt2kit.errors import DataError

MANIFEST = "manifest.json"
FORMAT = "gpt2kit-shards"


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tokens"


def shard_fingerprint(source: str, index: int) -> bytes:
    return hashlib.sha256(f"{source}|{index}".encode()).digest()


@dataclass
class Manifest:
    source: str  # hex fingerprint of the source files, the tokenizer and the options
    shard_tokens: int
    shards: list[dict] = field(default_factory=list)  # name, tokens, and `item`/`skip`: where the next one starts
    complete: bool = False
    documents: int = 0

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": 1, "source": self.source, "shard_tokens": self.shard_tokens,
                           "complete": self.complete, "tokens": self.tokens, "documents": self.documents,
                           "shards": self.shards}, indent=1) + "\n"


def is_shard_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(folder: str | os.PathLike) -> Manifest:
    path = Path(folder) / MANIFEST
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise KeyError("format")
        return Manifest(raw["source"], int(raw["shard_tokens"]), list(raw["shards"]), bool(raw["complete"]),
                        int(raw.get("documents", 0)))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a manifest written by gpt2kit prepare ({type(err).__name__}: {err})") from None


class ShardedTokens:
    """Token ids of consecutive shards as one sequence: len(), and slices (a slice is a numpy array
    when it has a step or ints; a lazy ShardedTokens when it is a plain range, as splits are)."""

    def __init__(self, arrays: list[np.ndarray], start: int = 0, stop: int | None = None) -> None:
        self.arrays = arrays
        self.ends = np.cumsum([len(a) for a in arrays]) if arrays else np.zeros(0, dtype=np.int64)
        total = int(self.ends[-1]) if len(self.ends) else 0
        self.start, self.stop = start, total if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("ShardedTokens takes contiguous slices")
        lo, hi, _ = key.indices(len(self))
        return self._read(self.start + lo, self.start + max(lo, hi))

    def split(self, cut: int) -> tuple[ShardedTokens, ShardedTokens]:
        return (ShardedTokens(self.arrays, self.start, self.start + cut),
                ShardedTokens(self.arrays, self.start + cut, self.stop))

    def _read(self, lo: int, hi: int) -> np.ndarray:
        parts = []
        shard = int(np.searchsorted(self.ends, lo, side="right"))
        while lo < hi:
            first = int(self.ends[shard - 1]) if shard else 0
            take = min(hi, int(self.ends[shard])) - lo
            parts.append(self.arrays[shard][lo - first:lo - first + take])
            lo += take
            shard += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def open_shards(folder: str | os.PathLike) -> ShardedTokens:
    """Every shard of a finished preparation, checked, as one sequence."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest.complete:
        raise DataError(f"{folder}: the preparation is not finished ({len(manifest.shards)} shards so far); rerun "
                        "the same `gpt2kit prepare` command to finish it")
    arrays = []
    for index, shard in enumerate(manifest.shards):
        path = folder / shard["name"]
        if not path.is_file():
            raise DataError(f"{folder}: {shard['name']} is missing (the manifest lists {len(manifest.shards)} "
                            "shards); restore it, or prepare the folder again")
        count, fingerprint = read_header(path)
        if count != shard["tokens"] or fingerprint != shard_fingerprint(manifest.source, index):
            raise DataError(f"{path}: not the shard the manifest lists ({count:,} tokens, manifest "
                            f"{shard['tokens']:,}); prepare the folder again")
        arrays.append(open_tokens(path))
    return ShardedTokens(arrays)
