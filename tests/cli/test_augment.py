"""`gpt2kit augment` end to end on a tiny model: fine-tune on `label: text` lines, generate, write."""

from __future__ import annotations

import csv
import json

import pytest

from gpt2kit.augmentation.dedup import normalise
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.weights import read_model
from helpers import assert_user_error, cli

SOURCE = [("In the beginning God created the heaven and the earth.", "law"),
          ("And God said, Let there be light: and there was light.", "law"),
          ("Jesus wept.", "gospels"),
          ("Blessed are the meek: for they shall inherit the earth.", "gospels")]
# the tiny random model writes no newline or <|endoftext|> of its own: a stop string ends its texts
FAST = ("--train-batch-size", "2", "--max-new-tokens", "6", "--stop", "e", "--seed", "0")


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["verse", "book"])
        writer.writerows(SOURCE)
    return path


def test_augment_fine_tunes_generates_and_writes_new_rows(model_dir, data, tmp_path):
    out, run_dir = tmp_path / "new.jsonl", tmp_path / "run"
    result = cli("augment", "--model", str(model_dir), "--data", str(data), "--text-column", "verse",
                 "--label-column", "book", "--per-class", "3", "--steps", "2", "--run-dir", str(run_dir),
                 "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(row) == {"verse", "book"} for row in rows)
    assert sorted(row["book"] for row in rows) == ["gospels"] * 3 + ["law"] * 3
    texts = [normalise(row["verse"]) for row in rows]
    assert len(set(texts)) == 6 and not set(texts) & {normalise(t) for t, _ in SOURCE}
    assert "fine-tuned 2 steps on 4 `label: text` lines" in result.stderr
    assert "wrote 6 new examples of 2 labels" in result.stderr
    table = [line.split() for line in result.stderr.splitlines() if line.startswith(("gospels ", "law "))]
    assert [row[0] for row in table] == ["gospels", "law"] and all(row[-1] == "3" for row in table)
    lines = [json.loads(line)["text"] for line in (run_dir / "lines.jsonl").read_text().splitlines()]
    assert lines[2] == "gospels: Jesus wept.\n"
    # four lines hold fewer tokens than the default --seq-len of 128: the window is all they hold (two
    # <|endoftext|> join them, and a window reads one token more than its length)
    tokens = sum(len(Tokenizer.from_pretrained().encode(line)) for line in lines)
    assert json.loads((run_dir / "train_config.json").read_text())["seq_len"] == tokens + len(lines) - 1 - 1
    assert "train.lines.jsonl" in read_model(run_dir / "model")[1].metadata["origin"]
    # the run's model, as it is: --steps 0, and the default --out beside the data
    again = cli("augment", "--model", str(run_dir / "model"), "--data", str(data), "--text-column", "verse",
                "--label-column", "book", "--per-class", "2", "--steps", "0", *FAST)
    assert again.returncode == 0, again.stderr
    assert "fine-tuned" not in again.stderr
    with (tmp_path / "train.augmented.csv").open(newline="") as f:
        written = list(csv.reader(f))
    assert written[0] == ["verse", "book"] and len(written) == 5


@pytest.fixture
def classifier(model_dir, tmp_path):
    """The tiny model with a random classification head for the data's two labels."""
    from gpt2kit.model.classifier import GPT2Classifier

    return GPT2Classifier.from_pretrained(model_dir, labels=["gospels", "law"]).save_pretrained(tmp_path / "cls")


def test_filter_keeps_what_the_classifier_assigns_to_the_label(model_dir, data, classifier, tmp_path):
    from gpt2kit.classification.predict import classify
    from gpt2kit.data.labelled import read_labelled
    from gpt2kit.model.classifier import GPT2Classifier
    from gpt2kit.tokenizer import Tokenizer

    out = tmp_path / "new.csv"
    result = cli("augment", "--model", str(model_dir), "--data", str(data), "--text-column", "verse",
                 "--label-column", "book", "--per-class", "4", "--steps", "0", "--filter", str(classifier),
                 "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    table = {line.split()[0]: line.split() for line in result.stderr.splitlines()
             if line.startswith(("gospels ", "law ", "total "))}
    assert int(table["total"][-2]) > 0  # the random head rejects some texts
    written = read_labelled(out, "verse", "book")
    assert len(written) == int(table["total"][-1]) > 0
    model = GPT2Classifier.from_pretrained(classifier)
    predicted = [p.label for p in classify(model, Tokenizer.for_model(classifier), written.texts)]
    assert predicted == written.labels


def test_filter_must_be_a_classifier_of_the_labels(model_dir, data, tmp_path):
    from gpt2kit.model.classifier import GPT2Classifier

    common = ("augment", "--model", str(model_dir), "--data", str(data), "--text-column", "verse", "--label-column",
              "book", "--per-class", "1", "--steps", "0")
    assert_user_error(cli(*common, "--filter", str(model_dir)), "a language model without a classification head")
    other = GPT2Classifier.from_pretrained(model_dir, labels=["law", "prophets"]).save_pretrained(tmp_path / "c2")
    assert_user_error(cli(*common, "--filter", str(other)), "a classifier of law, prophets, which cannot keep "
                                                            "examples of gospels")


@pytest.mark.parametrize("per_class", ["0", "-2"])
def test_per_class_below_one(model_dir, data, per_class):
    assert_user_error(cli("augment", "--model", str(model_dir), "--data", str(data), "--text-column", "verse",
                          "--label-column", "book", "--per-class", per_class),
                      f"--per-class must be at least 1 (new examples per label), got {per_class}")


def test_an_empty_text_in_the_data(model_dir, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "Jesus wept.", "label": "gospels"}\n{"text": "  ", "label": "law"}\n')
    assert_user_error(cli("augment", "--model", str(model_dir), "--data", str(path), "--per-class", "1"),
                      "train.jsonl:2: empty text in column 'text'")


def test_a_missing_column_is_named(model_dir, data):
    assert_user_error(cli("augment", "--model", str(model_dir), "--data", str(data), "--per-class", "1"),
                      "no 'text' column (columns: verse, book; choose one with --text-column)")


def test_a_classifier_is_not_a_generator(classifier, data):
    assert_user_error(cli("augment", "--model", str(classifier), "--data", str(data), "--text-column", "verse",
                          "--label-column", "book", "--per-class", "1"),
                      "a classifier (labels gospels, law), which does not generate text")


def test_bad_out_and_run_dir(model_dir, data, tmp_path):
    common = ("augment", "--model", str(model_dir), "--data", str(data), "--text-column", "verse", "--label-column",
              "book", "--per-class", "1")
    assert_user_error(cli(*common, "--out", str(tmp_path / "new.txt")), "new.txt: --out takes a .csv or .jsonl")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes").write_text("mine")
    assert_user_error(cli(*common, "--run-dir", str(busy)), "busy: holds files already")
    assert (busy / "notes").read_text() == "mine"
    assert_user_error(cli(*common, "--temperature", "0"), "greedy decoding")
    assert_user_error(cli(*common, "--near-duplicate", "0"), "near-duplicate threshold must be in (0, 1]")


def test_every_flag_has_help():
    from gpt2kit.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["augment"]
    missing = [a.option_strings for a in sub._actions if a.option_strings and not a.help]
    assert not missing
