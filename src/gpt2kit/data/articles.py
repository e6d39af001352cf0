"""Article/summary records: CNN/DailyMail in each of its published forms, and any such table.

- a folder of raw `.story` files (the original release): lines, `@highlight` before each summary
  sentence; as in the Hugging Face loader, a line that does not end in punctuation gets " ."
  and the article is its lines joined by spaces;
- the 3.0.0 tables (`article`, `highlights` with one sentence a line, `id`) as `.jsonl`, `.csv` or
  `.parquet` (pyarrow, the `parquet` extra); other column names with `source_column` /
  `target_column`;
- MindSpore GPT-2's preprocessed text files: one `article<TAB>highlights` record a line (any other
  file name is read this way).

A folder may hold any of these; its files are read in sorted order. `limit` keeps the first N
records, after a deterministic shuffle when `seed` is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gpt2kit.data.sources import csv_rows, data_files, jsonl_rows, lines
from gpt2kit.errors import DataError
from gpt2kit.extras import require

# the sentence ends the CNN/DailyMail preprocessing (See et al.; the Hugging Face loader) accepts
_END_TOKENS = (".", "!", "?", "...", "'", "`", '"', "\u2019", "\u201d", ")")
TABLES = (".jsonl", ".csv", ".parquet")


@dataclass(frozen=True)
class Article:
    id: str
    article: str
    highlights: tuple[str, ...]  # the reference summary, a sentence each

    @property
    def summary(self) -> str:
        """The reference as the 3.0.0 tables hold it: a sentence a line."""
        return "\n".join(self.highlights)


def read_articles(path: str | os.PathLike, *, source_column: str = "article", target_column: str = "highlights",
                  id_column: str = "id", limit: int | None = None, seed: int | None = None, errors: str = "strict",
                  progress: bool = False) -> list[Article]:
    """The records at `path` (a file or a folder of them), the first `limit` (after a shuffle by
    `seed` when given)."""
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    files = data_files(path)
    records: list[Article] = []
    stop = limit if seed is None else None  # a shuffled subset needs every record first
    with tqdm(total=len(files), unit="file", desc=f"reading {Path(path).name}", disable=not progress or len(files) < 2,
              leave=False) as bar:
        for file in files:
            for record in _read_file(file, source_column, target_column, id_column, errors):
                records.append(record)
                if stop is not None and len(records) >= stop:
                    break
            bar.update()
            if stop is not None and len(records) >= stop:
                break
    if not records:
        raise DataError(f"{path}: no articles found")
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(records))
        records = [records[i] for i in order]
    return records[:limit]


def _read_file(file: Path, source: str, target: str, id_column: str, errors: str) -> Iterator[Article]:
    if file.suffix == ".story":
        yield read_story(file, errors)
    elif file.suffix in TABLES:
        yield from _table(file, source, target, id_column, errors)
    else:
        yield from _tab_separated(file, errors)


def _fix_missing_period(line: str) -> str:
    return line if line.endswith(_END_TOKENS) else line + " ."


def read_story(file: Path, errors: str = "strict") -> Article:
    """One `.story` file: article lines, then `@highlight` before each summary sentence."""
    article, highlights, next_is_highlight = [], [], False
    for raw in lines(file, errors):
        line = raw.strip()
        if not line:
            continue
        if line == "@highlight":
            next_is_highlight = True
        elif next_is_highlight:
            highlights.append(_fix_missing_period(line))
            next_is_highlight = False
        else:
            article.append(_fix_missing_period(line))
    if not highlights:
        raise DataError(f"{file}: no @highlight line (a .story file ends with its summary, each sentence after a "
                        "line '@highlight')")
    return _checked(str(file), file.stem, " ".join(article), highlights)


def _checked(where: str, id_: str, article: str, highlights: list[str]) -> Article:
    if not article.strip():
        raise DataError(f"{where}: empty article")
    highlights = [h.strip() for h in highlights if h.strip()]
    if not highlights:
        raise DataError(f"{where}: empty summary")
    return Article(id_, article, tuple(highlights))


def _table(file: Path, source: str, target: str, id_column: str, errors: str) -> Iterator[Article]:
    def missing(found) -> DataError:
        absent = source if source not in found else target
        flag = "--source-column" if absent == source else "--target-column"
        return DataError(f"{file}: no {absent!r} column (columns: {', '.join(map(str, found))}; choose one with "
                         f"{flag})")

    if file.suffix == ".jsonl":
        rows = ((f"{file}:{n}", row) for n, row in jsonl_rows(file, lines(file, errors)))
    elif file.suffix == ".csv":
        flags = {source: "--source-column", target: "--target-column"}
        rows = ((f"{file}:{n}", row) for n, row in enumerate(csv_rows(file, lines(file, errors), flags), 2))
    else:
        pq = require("pyarrow.parquet", "parquet", "reading .parquet tables")
        table = pq.read_table(file)
        if source not in table.column_names or target not in table.column_names:
            raise missing(table.column_names)
        rows = ((f"{file}: row {n}", row) for n, row in enumerate(table.to_pylist(), 1))
    for n, (where, row) in enumerate(rows, 1):
        if source not in row or target not in row:
            raise missing(list(row))
        text, summary = row[source], row[target]
        if not isinstance(text, str) or not isinstance(summary, str):
            raise DataError(f"{where}: {source!r} and {target!r} must be strings")
        yield _checked(where, str(row.get(id_column) or f"{file.stem}-{n}"), text, summary.split("\n"))


def _tab_separated(file: Path, errors: str) -> Iterator[Article]:
    """MindSpore's `article<TAB>highlights` lines (its summary is one line: one highlight)."""
    for n, line in enumerate(lines(file, errors), 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.count("\t") != 1:
            raise DataError(f"{file}:{n}: expected 'article<TAB>summary' (one tab), found {line.count(chr(9))} tabs "
                            "(.jsonl, .csv, .parquet and .story files are read by their extension)")
        article, summary = line.split("\t")
        yield _checked(f"{file}:{n}", f"{file.stem}-{n}", article, [summary])
