"""Files -> documents: plain text, folders of text files, JSONL and CSV with a text column.

Each file of plain text is one document; each JSONL line or CSV row is one. Documents
are later joined with <|endoftext|> between them. Files are read as streams, and a plain
text document comes in pieces, so the size of a file is not bounded by memory.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from gpt2kit.errors import DataError

TABLE_SUFFIXES = (".jsonl", ".csv")


def data_files(path: Path) -> list[Path]:
    """The files a path names: itself, or every non-hidden file below a folder, sorted."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise DataError(f"{path}: the folder holds no files")
    return files


PIECE = 4 << 20  # characters of a plain-text document tokenized at a time


def lines(path: Path, errors: str) -> Iterator[str]:
    """The decoded lines of a file (line ends kept), read as a stream; binary files and bytes
    that are not UTF-8 (unless errors="replace") are one clear error."""
    with path.open("rb") as f:
        if b"\0" in f.read(8192):
            raise DataError(f"{path}: looks like a binary file (it holds NUL bytes), not text")
        f.seek(0)
        offset = 0
        for raw in f:
            skip = 3 if offset == 0 and raw.startswith(codecs.BOM_UTF8) else 0  # a byte-order mark is not text
            try:
                yield raw[skip:].decode("utf-8", errors=errors)
            except UnicodeDecodeError as err:
                raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {offset + skip + err.start}); "
                                "pass --errors replace to substitute U+FFFD") from None
            offset += len(raw)


def safe_cut(text: str) -> int:
    """The last index i where text[i] is a space between two non-space characters, or 0.

    GPT-2's pre-tokenizer never joins the characters on either side of such a space into one
    piece (the space starts the next one), so encoding text[:i] and text[i:] apart gives the
    ids of encoding the whole."""
    i = text.rfind(" ", 1, len(text) - 1)
    while i > 0 and (text[i - 1].isspace() or text[i + 1].isspace()):
        i = text.rfind(" ", 1, i)
    return max(i, 0)


def text_pieces(path: Path, errors: str, piece: int | None = None) -> Iterator[str]:
    """A plain-text document in pieces of about `piece` characters, cut where tokenizing the
    pieces apart gives the ids of the whole: a file of any size is never held at once."""
    piece = piece or PIECE
    held: list[str] = []
    size = 0
    for line in lines(path, errors):
        held.append(line)
        size += len(line)
        if size >= piece:
            text = "".join(held)
            cut = safe_cut(text)
            held, size = ([text[cut:]], len(text) - cut) if cut else ([text], len(text))
            if cut:
                yield text[:cut]
    if size:
        yield "".join(held)


def iter_documents(path: Path, *, text_column: str = "text", errors: str = "strict") -> Iterator[Iterable[str]]:
    """Each document of the data, as an iterable of text pieces to tokenize in order."""
    for file in data_files(path):
        if file.suffix == ".jsonl":
            yield from ([doc] for doc in _jsonl(file, lines(file, errors), text_column))
        elif file.suffix == ".csv":
            yield from ([doc] for doc in _csv(file, lines(file, errors), text_column))
        else:
            yield text_pieces(file, errors)


def _jsonl(file: Path, rows: Iterator[str], column: str) -> Iterator[str]:
    for n, line in enumerate(rows, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{file}:{n}: malformed JSON ({err.msg})") from None
        if not isinstance(row, dict) or column not in row:
            raise DataError(f"{file}:{n}: no {column!r} field (choose the field with --text-column)")
        if row[column] is not None:
            yield str(row[column])


def _csv(file: Path, rows: Iterator[str], column: str) -> Iterator[str]:
    csv.field_size_limit(sys.maxsize)  # documents are longer than csv's 128 KB default
    reader = csv.DictReader(rows)
    try:
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise DataError(f"{file}: no {column!r} column (columns: {', '.join(reader.fieldnames or [])}; choose "
                            "one with --text-column)")
        for row in reader:
            yield row[column] or ""
    except csv.Error as err:
        raise DataError(f"{file}: malformed CSV (line {reader.line_num}: {err})") from None
