"""Files -> documents: plain text, folders of text files, JSONL and CSV with a text column.

Each file of plain text is one document; each JSONL line or CSV row is one. Documents
are later joined with <|endoftext|> between them. Files are read as streams, and a plain
text document comes in pieces, so the size of a file is not bounded by memory.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from gpt2kit.errors import DataError


def data_files(path: str | os.PathLike) -> list[Path]:
    """The files a path names: itself, or every non-hidden file below a folder, sorted, each
    file once (see `scan`)."""
    return scan(path)[0]


def scan(path: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(files, skipped links) of a path: itself, or every non-hidden file below a folder, sorted.
    Symbolic links to files and folders are followed, except those that lead to a file or folder
    already read (a linked file would otherwise count twice, and a link to a parent folder loop):
    those are returned as skipped."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return [path], []
    files: list[Path] = []
    skipped: list[Path] = []
    seen: set[tuple[int, int]] = set()  # (device, inode) of every file and folder read
    links: list[Path] = []  # followed once everything reachable without links is read

    def first_time(p: Path) -> bool:
        st = p.stat()
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return False
        seen.add(key)
        return True

    def walk(folder: Path) -> None:
        for entry in sorted(e for e in folder.iterdir() if not e.name.startswith(".")):
            if entry.is_symlink():
                links.append(entry)
            elif entry.is_dir():
                if first_time(entry):
                    walk(entry)
            elif entry.is_file() and first_time(entry):
                files.append(entry)

    first_time(path)
    walk(path)
    while links:
        link = links.pop(0)
        if not link.exists():
            continue  # a broken link
        if not first_time(link):
            skipped.append(link)
        elif link.is_dir():
            walk(link)
        elif link.is_file():
            files.append(link)
    if not files:
        raise DataError(f"{path}: the folder holds no files")
    return sorted(files), sorted(skipped)


PIECE = 4 << 20  # characters of a plain-text document tokenized at a time


def lines(path: str | os.PathLike, errors: str) -> Iterator[str]:
    """The decoded lines of a file (line ends kept), read as a stream; binary files and bytes
    that are not UTF-8 (unless errors="replace") are one clear error."""
    path = Path(path)
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


# Where GPT-2's pre-tokenizer never joins the characters on either side into one piece:
# before a space between two non-spaces (the space starts the next piece), and after a
# single newline between two non-spaces (the newline is a piece of its own either way).
_CUT = re.compile(r"(?<=\S)(?= \S)|(?<=\S\n)(?=\S)")


def safe_cut(text: str, start: int = 0) -> int:
    """The last index >= start where encoding text[:i] and text[i:] apart gives the ids of
    encoding the whole, or 0 when there is none."""
    lo = max(start, 1)
    width = 4096
    while True:  # the last match, looked for near the end first: places to cut are a word apart in text
        pos = max(lo, len(text) - width)
        cut = 0
        for match in _CUT.finditer(text, pos):  # the lookbehinds still see the characters before pos
            cut = match.start()
        if cut or pos == lo:
            return cut
        width *= 16


def text_pieces(path: str | os.PathLike, errors: str, piece: int | None = None) -> Iterator[str]:
    """A plain-text document in pieces of about `piece` characters, cut where tokenizing the
    pieces apart gives the ids of the whole: a file of any size is never held at once
    (unless it has no place to cut, such as one line without spaces)."""
    piece = piece or PIECE
    held: list[str] = []
    size, goal, searched = 0, piece, 0
    for line in lines(path, errors):
        held.append(line)
        size += len(line)
        if size < goal:
            continue
        text = "".join(held)
        cut = safe_cut(text, searched)
        if cut:
            yield text[:cut]
            text, goal = text[cut:], piece
        else:  # nowhere to cut yet: look again at twice the size, at the new text only (linear time)
            goal = 2 * len(text)
        # the held text has no cut left; only its last two characters can become one with what comes next
        held, size, searched = [text], len(text), max(len(text) - 2, 0)
    if size:
        yield "".join(held)


def iter_documents(path: str | os.PathLike, *, text_column: str = "text", errors: str = "strict",
                   piece: int | None = None) -> Iterator[Iterable[str]]:
    """Each document of the data, as an iterable of text pieces (of about `piece` characters) to
    tokenize in order."""
    for file in data_files(path):
        if file.suffix == ".jsonl":
            yield from ([doc] for doc in _jsonl(file, lines(file, errors), text_column))
        elif file.suffix == ".csv":
            yield from ([doc] for doc in _csv(file, lines(file, errors), text_column))
        else:
            yield text_pieces(file, errors, piece)


def jsonl_rows(file: Path, rows: Iterator[str]) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSONL file."""
    # JSON strings hold no raw CR or LF, so a CR alone (old Mac line ends) also ends a record;
    # U+2028 and other Unicode line breaks may stand inside strings and do not
    records = (record for row in rows for record in row.removesuffix("\n").removesuffix("\r").split("\r"))
    for n, line in enumerate(records, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{file}:{n}: malformed JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{file}:{n}: a JSON object per line expected, got {type(row).__name__}")
        yield n, row


def csv_rows(file: Path, rows: Iterator[str], columns: dict[str, str]) -> Iterator[dict]:
    """The rows of a CSV file as dicts, after checking that it has `columns` (column -> the flag
    that chooses it)."""
    csv.field_size_limit(sys.maxsize)  # documents are longer than csv's 128 KB default
    reader = csv.DictReader(rows)
    try:
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{file}: no {missing[0]!r} column (columns: {', '.join(reader.fieldnames or [])}; "
                            f"choose one with {columns[missing[0]]})")
        yield from reader
    except csv.Error as err:
        raise DataError(f"{file}: malformed CSV (line {reader.line_num}: {err})") from None


def _jsonl(file: Path, rows: Iterator[str], column: str) -> Iterator[str]:
    for n, row in jsonl_rows(file, rows):
        if column not in row:
            raise DataError(f"{file}:{n}: no {column!r} field (choose the field with --text-column)")
        if row[column] is not None:
            yield str(row[column])


def _csv(file: Path, rows: Iterator[str], column: str) -> Iterator[str]:
    for row in csv_rows(file, rows, {column: "--text-column"}):
        yield row[column] or ""
