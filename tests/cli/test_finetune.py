"""`gpt2kit finetune` from the command line: a short run, and one clear line for each bad input."""

from __future__ import annotations

import json

import pytest

from helpers import assert_user_error, run_cli


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("In the beginning God created the heaven and the earth. " * 40)
    return path


def finetune(*args, tmp_path):
    return run_cli("finetune", "--cache-dir", str(tmp_path / "cache"), *args)


def test_short_run_with_samples_and_validation(text, tmp_path):
    result = finetune("--data", str(text), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len",
                      "32", "--max-steps", "4", "--val-fraction", "0.2", "--eval-every", "2", "--sample-every", "2",
                      "--sample-prompt", "In the", "--sample-tokens", "8", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained 4 steps" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "tokens_per_s", "val_loss", "val_ppl", "sample"} <= set(rows[1])
    assert rows[1]["sample"].startswith("In the")


@pytest.mark.parametrize(
    "make,extra,fragments",
    [
        (lambda p: p.write_bytes(b""), (), ("no text to train on",)),
        (lambda p: p.write_bytes(b"\x00\x01\x02\x03"), (), ("binary",)),
        (lambda p: p.write_bytes(b"caf\xe9 " * 100), (), ("not UTF-8", "--errors replace")),
        (lambda p: p.write_text("too short"), (), ("fewer than one window",)),
        (lambda p: None, (), ("no such file",)),
        (lambda p: p.write_text("x " * 5000), ("--seq-len", "4096"), ("larger than the model's context",)),
        (lambda p: p.write_text("x " * 5000), ("--batch-size", "0"), ("batch-size",)),
        (lambda p: p.write_text("x " * 5000), ("--base-lr", "-0.1"), ("learning rates",)),
        (lambda p: p.write_text("x " * 5000), ("--dropout", "1.5"), ("dropout must be in [0, 1)",)),
    ],
    ids=["empty", "binary", "not-utf8", "short", "missing", "seq-len", "batch-0", "negative-lr", "dropout"],
)
def test_bad_input(tmp_path, make, extra, fragments):
    data = tmp_path / "data.txt"
    make(data)
    result = finetune("--data", str(data), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len", "64",
                      "--max-steps", "1", *extra, tmp_path=tmp_path)
    assert_user_error(result, *fragments)


def test_output_folder_of_another_run_and_resume_without_state(text, tmp_path):
    args = ("--data", str(text), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len", "32",
            "--max-steps", "1")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    assert_user_error(finetune(*args, tmp_path=tmp_path), "already holds files", "--overwrite")
    assert_user_error(finetune(*args, "--resume", tmp_path=tmp_path), "no checkpoint")
    assert finetune(*args, "--overwrite", tmp_path=tmp_path).returncode == 0


def test_resume_with_other_settings_and_unknown_device(text, tmp_path):
    args = ("--data", str(text), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len", "32",
            "--max-steps", "2")
    assert finetune(*args, tmp_path=tmp_path).returncode == 0
    assert_user_error(finetune(*args, "--resume", "--batch-size", "3", tmp_path=tmp_path), "--batch-size 1, not 3")
    assert_user_error(finetune(*args, "--overwrite", "--device", "tpu9", tmp_path=tmp_path), "unknown device")
    assert (tmp_path / "run" / "model").is_dir()  # a refused --overwrite run removed nothing
