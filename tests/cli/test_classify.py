"""`gpt2kit finetune --task classify`, `gpt2kit classify` and `gpt2kit eval classify` on a folder of class
folders, and one clear line for each model given to the wrong command."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from gpt2kit.cli.main import main

CLASSES = {"sea": ["fish swim in the sea", "the whale and the wave", "salt tide ship", "a ship on the sea"],
           "land": ["a tree on the hill", "stone field and wheat", "the road by the hill", "wheat in the field"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A classifier trained from the command line on a folder with a sub-folder per class."""
    root = tmp_path_factory.mktemp("classify")
    for label, texts in CLASSES.items():
        (root / "data" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (root / "data" / label / f"{i}.txt").write_text(text + "\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["finetune", "--task", "classify", "--data", str(root / "data"), "--out", str(root / "run"),
                     "--from-scratch", "tiny", "--batch-size", "4", "--max-steps", "3", "--lr", "1e-3",
                     "--class-weights", "balanced", "--val-fraction", "0.25"])
    assert code == 0
    assert "(cross-entropy; `gpt2kit eval classify` gives accuracy and F1)" in out.getvalue()
    return root


def test_classify_writes_jsonl(run, tmp_path, capsys):
    capsys.readouterr()
    model = str(run / "run" / "model")
    assert main(["classify", "--model", model, "--text", "the sea", "--text", "a hill", "--batch-size", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["the sea", "a hill"]
    for r in rows:
        assert set(r["probs"]) == {"land", "sea"} and abs(sum(r["probs"].values()) - 1) < 1e-6
        assert r["label"] == max(r["probs"], key=r["probs"].get)
    (tmp_path / "in.csv").write_text("id,text\n1,the sea\n2,a hill\n")
    assert main(["classify", "--model", model, "--input", str(tmp_path / "in.csv"), "--output",
                 str(tmp_path / "out.jsonl")]) == 0
    batched = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["label"] for r in batched] == [r["label"] for r in rows]
    for alone, padded in zip(rows, batched, strict=True):  # a row padded in a batch scores as it does alone
        assert padded["probs"] == pytest.approx(alone["probs"], abs=1e-6)


def test_eval_classify_prints_and_writes(run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", "classify", "--model", str(run / "run" / "model"), "--data", str(run / "data"),
                 "--output", str(tmp_path / "eval.json"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accuracy  ") and "confusion matrix (rows: true class, columns: predicted)" in out
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["examples"] == 8 and report["labels"] == ["land", "sea"]
    assert sum(map(sum, report["confusion_matrix"])) == 8
    pytest.importorskip("matplotlib")
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"


def test_each_model_to_its_own_command(run, model_dir, tmp_path, capsys):
    classifier = str(run / "run" / "model")
    assert main(["generate", "--model", classifier, "--prompt", "Hi"]) == 1
    assert "a classifier (labels land, sea), which does not generate text; run it with `gpt2kit classify`" in \
        capsys.readouterr().err
    assert main(["classify", "--model", str(model_dir), "--text", "Hi"]) == 1
    err = capsys.readouterr().err
    assert "a language model without a classification head; fine-tune one with `gpt2kit finetune --task classify " \
           f"--model {model_dir} --data train.csv --out DIR`" in err
    (tmp_path / "one.csv").write_text("text,label\na,x\nb,x\n")
    assert main(["finetune", "--task", "classify", "--data", str(tmp_path / "one.csv"), "--out",
                 str(tmp_path / "r"), "--from-scratch", "tiny", "--max-steps", "1"]) == 1
    assert "holds one class ('x'); a classifier needs examples of at least two" in capsys.readouterr().err
    (tmp_path / "test.csv").write_text("text,label\nthe sea,sea\nthe sky,sky\n")
    assert main(["eval", "classify", "--model", classifier, "--data", str(tmp_path / "test.csv")]) == 1
    assert "label 'sky' never seen in training" in capsys.readouterr().err
