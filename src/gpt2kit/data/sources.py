"""Files -> documents: plain text, folders of text files, JSONL and CSV with a text column.

Each file of plain text is one document; each JSONL line or CSV row is one. Documents
are later joined with <|endoftext|> between them.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
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


def read_text(path: Path, errors: str) -> str:
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        raise DataError(f"{path}: looks like a binary file (it holds NUL bytes), not text")
    try:
        return raw.decode("utf-8-sig", errors=errors)  # a byte-order mark is not text
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {err.start}); pass --errors replace "
                        "to substitute U+FFFD") from None


def iter_documents(path: Path, *, text_column: str = "text", errors: str = "strict") -> Iterator[str]:
    for file in data_files(path):
        text = read_text(file, errors)
        if file.suffix == ".jsonl":
            yield from _jsonl(file, text, text_column)
        elif file.suffix == ".csv":
            yield from _csv(file, text, text_column)
        else:
            yield text


def _jsonl(file: Path, text: str, column: str) -> Iterator[str]:
    for n, line in enumerate(text.splitlines(), 1):
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


def _csv(file: Path, text: str, column: str) -> Iterator[str]:
    csv.field_size_limit(sys.maxsize)  # documents are longer than csv's 128 KB default
    reader = csv.DictReader(io.StringIO(text))
    try:
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise DataError(f"{file}: no {column!r} column (columns: {', '.join(reader.fieldnames or [])}; choose "
                            "one with --text-column)")
        for row in reader:
            yield row[column] or ""
    except csv.Error as err:
        raise DataError(f"{file}: malformed CSV (line {reader.line_num}: {err})") from None
