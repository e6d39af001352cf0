"""Labelled text: CSV, JSONL and class folders give the same examples (checked against the stdlib's
csv and json readers), a written set reads back, and each malformed input is one line."""

from __future__ import annotations

import csv
import json

import pytest

from gpt2kit.data.labelled import LabelledSet, read_labelled, write_labelled
from gpt2kit.errors import DataError, GPT2KitError

ROWS = [("In the beginning God created the heaven and the earth.", "old"),
        ("Jesus wept.", "new"),
        ('A line with "quotes", a comma,\nand a newline.', "new"),
        ("Vanity of vanities; all is vanity.", "old")]


def test_csv_jsonl_and_folders_read_the_same(tmp_path):
    with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "verse", "testament"])
        w.writerows([(i, t, label) for i, (t, label) in enumerate(ROWS)])
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"verse": t, "testament": label, "n": 1}) + "\n"
                                              for t, label in ROWS), encoding="utf-8")
    for i, (text, label) in enumerate(ROWS):
        (tmp_path / "folders" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folders" / label / f"{i}.txt").write_text(text + "\n", encoding="utf-8")

    for name in ("d.csv", "d.jsonl"):
        data = read_labelled(tmp_path / name, text_column="verse", label_column="testament")
        assert list(zip(data.texts, data.labels, strict=True)) == ROWS
        assert (data.label_names, data.source, len(data)) == (["new", "old"], str(tmp_path / name), 4)
    folders = read_labelled(tmp_path / "folders")
    assert sorted(zip(folders.texts, folders.labels, strict=True)) == sorted(ROWS)  # the trailing newline is not text


def test_numeric_labels_are_strings(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": "1"}\n'
                                      '{"text": "c", "label": 0}\n')
    assert read_labelled(tmp_path / "d.jsonl").labels == ["1", "1", "0"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_write_then_read_back(tmp_path, suffix):
    data = LabelledSet([t for t, _ in ROWS], [label for _, label in ROWS], "mem", "body", "cls")
    write_labelled(tmp_path / f"out{suffix}", data)
    back = read_labelled(tmp_path / f"out{suffix}", text_column="body", label_column="cls")
    assert (back.texts, back.labels) == (data.texts, data.labels)
    if suffix == ".csv":  # an ordinary CSV that any reader takes
        with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
            assert [(r["body"], r["cls"]) for r in csv.DictReader(f)] == ROWS
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_bad_input(tmp_path):
    (tmp_path / "d.csv").write_text("sentence,label\nhello,a\n")
    with pytest.raises(DataError, match=r"d.csv: no 'text' column \(columns: sentence, label; choose one with "
                                        r"--text-column\)"):
        read_labelled(tmp_path / "d.csv")
    with pytest.raises(DataError, match=r"no 'y' column \(columns: sentence, label; .*--label-column"):
        read_labelled(tmp_path / "d.csv", text_column="sentence", label_column="y")

    (tmp_path / "e.csv").write_text("text,label\nhello,a\n  ,b\n")
    with pytest.raises(DataError, match=r"e.csv:3: empty text in column 'text'"):
        read_labelled(tmp_path / "e.csv")
    (tmp_path / "e.jsonl").write_text('{"text": "x", "label": "a"}\n{"text": "y"}\n')
    with pytest.raises(DataError, match=r"e.jsonl:2: no 'label' field \(fields: text; choose one with "
                                        r"--label-column\)"):
        read_labelled(tmp_path / "e.jsonl")
    (tmp_path / "n.jsonl").write_text('{"text": "x", "label": null}\n')
    with pytest.raises(DataError, match=r"n.jsonl:1: empty label"):
        read_labelled(tmp_path / "n.jsonl")

    (tmp_path / "f" / "pos").mkdir(parents=True)
    (tmp_path / "f" / "pos" / "a.txt").write_text("fine")
    (tmp_path / "f" / "pos" / "b.txt").write_text("\n \n")
    with pytest.raises(DataError, match=r"pos/b.txt: empty text"):
        read_labelled(tmp_path / "f")
    (tmp_path / "f" / "loose.txt").write_text("no class")
    with pytest.raises(DataError, match=r"'loose.txt' is a file"):
        read_labelled(tmp_path / "f")

    (tmp_path / "d.tsv").write_text("a\tb\n")
    with pytest.raises(DataError, match=r"d.tsv: unknown format of labelled data '.tsv'"):
        read_labelled(tmp_path / "d.tsv")
    with pytest.raises(DataError, match="no such file"):
        read_labelled(tmp_path / "absent.csv")
    (tmp_path / "h.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="no labelled examples"):
        read_labelled(tmp_path / "h.csv")
    with pytest.raises(GPT2KitError, match=r"name the file .csv or .jsonl"):
        write_labelled(tmp_path / "out.txt", LabelledSet(["a"], ["b"], "mem"))
