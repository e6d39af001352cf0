"""`gpt2kit prepare`: tokenize a corpus larger than memory into a shard folder, with N workers.

The main process reads the source as a stream (data/sources.py: files, folders, .jsonl /
.csv columns, plain text in pieces cut where tokenization cannot change) and groups the
pieces into work items of about a megabyte; worker processes tokenize the items, at most two
per worker in flight, and the main process writes their ids in order into shards of exactly
`shard_tokens` tokens (the last one shorter), each a token file written atomically. The ids
are those of the single-process cache (data/dataset.py): each document's tokens, then
<|endoftext|>.

Resumable: after each shard, manifest.json records where in the stream of work items the
next shard starts. Run again with the same arguments after a kill, it reads past the items
already written (reading is cheap next to tokenizing) and continues; a finished folder is
left as it is.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gpt2kit.atomic import atomic_write
from gpt2kit.data.dataset import fingerprint
from gpt2kit.data.shards import MANIFEST, Manifest, read_manifest, shard_fingerprint, shard_name
from gpt2kit.data.sources import data_files, iter_documents
from gpt2kit.data.tokens import write_tokens
from gpt2kit.errors import DataError
from gpt2kit.tokenizer import Tokenizer

ITEM_CHARS = 1 << 20  # characters per work item: enough to make the hand-over to a worker cheap
DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB shards, as llm.c's and nanoGPT's FineWeb shards

Item = list[tuple[str, bool]]  # (text, whether <|endoftext|> follows it)


@dataclass
class PrepareResult:
    out: Path
    shards: int
    tokens: int
    documents: int
    new_tokens: int  # tokenized by this call (0: the folder was finished already)
    source_bytes: int


def prepare(source: str | os.PathLike, out: str | os.PathLike, *, workers: int | None = None,
            shard_tokens: int = DEFAULT_SHARD_TOKENS, text_column: str = "text", errors: str = "strict",
            tokenizer: Tokenizer | None = None, progress: bool = True) -> PrepareResult:
    """Tokenize `source` into shards in `out` (continuing an unfinished preparation there)."""
    source, out = Path(source), Path(out)
    workers = workers or os.cpu_count() or 1
    if workers < 1 or shard_tokens < 1:
        raise DataError(f"workers and shard-tokens must be >= 1, got {workers} and {shard_tokens}")
    tokenizer = tokenizer or Tokenizer.from_pretrained()
    files = data_files(source)
    if out.exists() and out.resolve() in [f.resolve().parent for f in files] + [source.resolve()]:
        raise DataError(f"{out}: is the source itself; choose another --out")
    key = fingerprint(source, tokenizer, f"prepare|{ITEM_CHARS}|{text_column}|{errors}").hex()
    manifest = _start(out, key, shard_tokens)
    total_bytes = sum(f.stat().st_size for f in files)
    if manifest.complete:
        return PrepareResult(out, len(manifest.shards), manifest.tokens, manifest.documents, 0, total_bytes)
    first_item, skip = ((manifest.shards[-1]["item"], manifest.shards[-1]["skip"]) if manifest.shards else (0, 0))
    writer = _ShardWriter(out, manifest, tokenizer)
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc=f"tokenizing {source.name}", disable=not progress,
               dynamic_ncols=True)
    documents = 0
    items = _items(source, text_column, errors)

    def todo() -> Iterator[tuple[int, Item]]:
        nonlocal documents
        for index, (item, size) in enumerate(items):
            documents += sum(eot for _, eot in item)
            if index < first_item:
                bar.update(size)  # written before: read past it
                continue
            yield index, item
            bar.update(size)

    new_tokens = 0
    with bar:
        for index, ids in _tokenized(todo(), tokenizer, workers):
            if index == first_item and skip:
                ids = ids[skip:]  # the start of this item is in the last shard already
            writer.add(ids, index)
            new_tokens += len(ids)
            bar.set_postfix(tokens=f"{manifest.tokens + writer.buffered:,}", refresh=False)
        writer.finish(documents)
    return PrepareResult(out, len(manifest.shards), manifest.tokens, documents, new_tokens, total_bytes)


def _start(out: Path, key: str, shard_tokens: int) -> Manifest:
    """The manifest to continue: a new one for an empty or absent folder, the folder's own when it
    is an unfinished (or finished) preparation of the same source; shards it does not list go."""
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        if manifest.source != key or manifest.shard_tokens != shard_tokens:
            raise DataError(f"{out}: holds shards of another source or other options; choose another --out or "
                            "delete the folder")
        listed = {s["name"] for s in manifest.shards}
        for stale in out.glob("shard-*.tokens"):
            if stale.name not in listed:
                stale.unlink()  # written after the manifest's last save: its position is unknown
        return manifest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already holds other files; choose an empty or new folder for the shards")
    out.mkdir(parents=True, exist_ok=True)
    return Manifest(key, shard_tokens)


def _items(source: Path, text_column: str, errors: str) -> Iterator[tuple[Item, int]]:
    """Work items (and the source bytes each holds), always cut alike for the same source: a
    resumed preparation finds its place by counting them."""
    item: Item = []
    chars = size = 0
    for doc in iter_documents(source, text_column=text_column, errors=errors, piece=ITEM_CHARS):
        had_text = False
        for piece in doc:
            if piece:
                had_text = True
                item.append((piece, False))
                chars += len(piece)
                size += len(piece.encode("utf-8", errors="replace"))
            if chars >= ITEM_CHARS:
                yield item, size
                item, chars, size = [], 0, 0
        if had_text:  # <|endoftext|> after every document that has text, as the token cache does
            item.append(("", True))
    if item:
        yield item, size


_TOKENIZER: Tokenizer | None = None


def _init_worker(vocab_file: str, merges_file: str) -> None:
    global _TOKENIZER
    _TOKENIZER = Tokenizer(vocab_file, merges_file)


def _encode(item: Item) -> np.ndarray:
    tokenizer = _TOKENIZER
    assert tokenizer is not None
    ids: list[int] = []
    for text, eot in item:
        if text:
            ids.extend(tokenizer.encode(text))
        if eot:
            ids.append(tokenizer.eot_id)
    return np.asarray(ids, dtype=np.uint16)


def _tokenized(items: Iterator[tuple[int, Item]], tokenizer: Tokenizer,
               workers: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, ids) of each item, in order; tokenized by `workers` processes (1: this one)."""
    if workers == 1:
        _init_worker(str(tokenizer.vocab_file), str(tokenizer.merges_file))
        for index, item in items:
            yield index, _encode(item)
        return
    # fork: the workers start at once, without importing gpt2kit again (spawn elsewhere)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Pool(workers, _init_worker, (str(tokenizer.vocab_file), str(tokenizer.merges_file))) as pool:
        pending: deque = deque()
        for index, item in items:
            pending.append((index, pool.apply_async(_encode, (item,))))
            if len(pending) >= 2 * workers:  # bounded: the corpus is never read far ahead of the writer
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


class _ShardWriter:
    """Ids in, shards of exactly shard_tokens out, each recorded in the manifest once written."""

    def __init__(self, out: Path, manifest: Manifest, tokenizer: Tokenizer) -> None:
        self.out, self.manifest = out, manifest
        self.parts: list[np.ndarray] = []
        self.buffered = 0
        if int(tokenizer.vocab_size) > 1 << 16:
            raise DataError(f"a vocabulary of {tokenizer.vocab_size} ids does not fit uint16 token files")

    def add(self, ids: np.ndarray, item: int) -> None:
        pos = 0
        while pos < len(ids):
            take = min(len(ids) - pos, self.manifest.shard_tokens - self.buffered)
            self.parts.append(ids[pos:pos + take])
            self.buffered += take
            pos += take
            if self.buffered == self.manifest.shard_tokens:
                # where the next shard starts: inside this item, or at the next one
                self._write(item if pos < len(ids) else item + 1, pos if pos < len(ids) else 0)

    def finish(self, documents: int) -> None:
        if self.buffered:
            self._write(-1, 0)
        if not self.manifest.shards:
            raise DataError(f"{self.out}: the source holds no text to tokenize")
        self.manifest.complete, self.manifest.documents = True, documents
        atomic_write(self.out / MANIFEST, self.manifest.to_json())

    def _write(self, next_item: int, skip: int) -> None:
        index = len(self.manifest.shards)
        name = shard_name(index)
        count = write_tokens(self.out / name, self.parts, shard_fingerprint(self.manifest.source, index))
        self.manifest.shards.append({"name": name, "tokens": count, "item": next_item, "skip": skip})
        atomic_write(self.out / MANIFEST, self.manifest.to_json())  # the shard exists: record it
        self.parts, self.buffered = [], 0
