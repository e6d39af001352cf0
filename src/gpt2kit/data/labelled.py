"""Labelled text: (text, label) pairs from a CSV or JSONL table, or a folder with a sub-folder per class.

- `.csv` with a header row, `.jsonl` with an object a line: the text and the label in the columns
  named by `text_column` / `label_column` (labels are kept as strings, so `1` and `"1"` are one class);
- a folder holding one sub-folder per class, each file in it one example (its text without the
  whitespace around it), its label the sub-folder's name (the layout of torchvision's ImageFolder and
  of the IMDB / 20 Newsgroups releases).

Checks that depend on the task (a single class, test labels unseen in training) belong to the
trainer and the evaluation; this module only says what is malformed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpt2kit.atomic import atomic_write
from gpt2kit.data.sources import csv_rows, data_files, jsonl_rows, lines
from gpt2kit.errors import DataError

TABLES = (".csv", ".jsonl")


@dataclass(frozen=True)
class LabelledSet:
    texts: list[str]
    labels: list[str]
    source: str  # what the user typed, for messages
    text_column: str = "text"
    label_column: str = "label"

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_names(self) -> list[str]:
        """The classes present, sorted."""
        return sorted(set(self.labels))


def read_labelled(path: str | Path, text_column: str = "text", label_column: str = "label") -> LabelledSet:
    """The examples at `path`: a .csv or .jsonl table, or a folder with a sub-folder per class."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        pairs = list(_class_folders(path))
    elif path.suffix == ".csv":
        pairs = list(_csv(path, text_column, label_column))
    elif path.suffix == ".jsonl":
        pairs = list(_jsonl(path, text_column, label_column))
    else:
        raise DataError(f"{path}: unknown format of labelled data {path.suffix or '(no extension)'!r}; expected a "
                        ".csv or .jsonl table, or a folder with a sub-folder of text files per class")
    if not pairs:
        raise DataError(f"{path}: no labelled examples found")
    texts, labels = (list(x) for x in zip(*pairs, strict=True))
    return LabelledSet(texts, labels, str(path), text_column, label_column)


def write_labelled(path: str | Path, data: LabelledSet) -> None:
    """Write `data` as a .csv or .jsonl table (by the suffix of `path`), with its own column names."""
    path = Path(path)
    out = io.StringIO(newline="")
    if path.suffix == ".csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([data.text_column, data.label_column])
        writer.writerows(zip(data.texts, data.labels, strict=True))
    elif path.suffix == ".jsonl":
        for text, label in zip(data.texts, data.labels, strict=True):
            out.write(json.dumps({data.text_column: text, data.label_column: label}, ensure_ascii=False) + "\n")
    else:
        raise DataError(f"{path}: cannot write labelled data as {path.suffix or '(no extension)'!r}; name the "
                        "file .csv or .jsonl")
    atomic_write(path, out.getvalue())


def _checked(where: str, text, label, text_column: str, label_column: str) -> tuple[str, str]:
    if text is None or not str(text).strip():
        raise DataError(f"{where}: empty text in column {text_column!r} (remove the row or fill it in)")
    if label is None or not str(label).strip():
        raise DataError(f"{where}: empty label in column {label_column!r} (remove the row or fill it in)")
    return str(text), str(label).strip()


def _csv(file: Path, text_column: str, label_column: str) -> Iterator[tuple[str, str]]:
    flags = {text_column: "--text-column", label_column: "--label-column"}
    for n, row in enumerate(csv_rows(file, lines(file, "strict"), flags), 2):  # row 1 is the header
        yield _checked(f"{file}:{n}", row[text_column], row[label_column], text_column, label_column)


def _jsonl(file: Path, text_column: str, label_column: str) -> Iterator[tuple[str, str]]:
    flags = {text_column: "--text-column", label_column: "--label-column"}
    for n, row in jsonl_rows(file, lines(file, "strict")):
        for column, flag in flags.items():
            if column not in row:
                raise DataError(f"{file}:{n}: no {column!r} field (fields: {', '.join(row)}; choose one with {flag})")
        yield _checked(f"{file}:{n}", row[text_column], row[label_column], text_column, label_column)


def _class_folders(folder: Path) -> Iterator[tuple[str, str]]:
    entries = sorted(e for e in folder.iterdir() if not e.name.startswith("."))
    stray = [e.name for e in entries if not e.is_dir()]
    if stray:
        raise DataError(f"{folder}: a folder of labelled text holds one sub-folder per class, but {stray[0]!r} is a "
                        "file (move it into its class's sub-folder, or name a .csv or .jsonl file)")
    if not entries:
        raise DataError(f"{folder}: no class sub-folders (a folder of labelled text holds one sub-folder per class)")
    for sub in entries:
        for file in data_files(sub):
            text = "".join(lines(file, "strict")).strip()
            if not text:
                raise DataError(f"{file}: empty text (each file in a class folder is one example)")
            yield text, sub.name



def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """Texts to classify: the text column of a .csv or .jsonl table (a label column, if any, is not
    read), or one text a non-blank line of any other file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: a folder; name a file of texts")
    flags = {text_column: "--text-column"}
    if path.suffix == ".csv":
        rows = ((f"{path}:{n}", row) for n, row in enumerate(csv_rows(path, lines(path, "strict"), flags), 2))
    elif path.suffix == ".jsonl":
        rows = ((f"{path}:{n}", row) for n, row in jsonl_rows(path, lines(path, "strict")))
    else:
        return [line.strip() for line in lines(path, "strict") if line.strip()]
    texts = []
    for where, row in rows:
        if text_column not in row:
            raise DataError(f"{where}: no {text_column!r} field (fields: {', '.join(row)}; choose one with "
                            "--text-column)")
        text = row[text_column]
        if text is None or not str(text).strip():
            raise DataError(f"{where}: empty text in column {text_column!r}")
        texts.append(str(text))
    return texts
