"""`gpt2kit eval`: the commands as a user runs them, their output files and their one-line errors."""

from __future__ import annotations

import json

import pytest

from gpt2kit import GPT2, Tokenizer, perplexity
from helpers import assert_user_error, run_cli


def test_perplexity_prints_and_writes_json(model_dir, tmp_path):
    text = "In the beginning God created the heaven and the earth. " * 12
    (tmp_path / "text.txt").write_text(text)
    out = tmp_path / "ppl.json"
    result = run_cli("eval", "perplexity", "--model", str(model_dir), "--data", str(tmp_path / "text.txt"),
                     "--stride", "16", "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress")
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    tok = Tokenizer.from_pretrained()
    expected = perplexity(GPT2.from_pretrained(model_dir).eval(), [*tok.encode(text), tok.eot_id], stride=16)
    assert record["perplexity"] == pytest.approx(expected.value, rel=1e-5)
    assert record["tokens"] == expected.tokens and record["stride"] == 16
    printed = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert float(printed["perplexity"]) == pytest.approx(expected.value, rel=1e-5)
    assert printed["bits"].startswith(f"per byte {record['bits_per_byte']:.4f}")

    bad = run_cli("eval", "perplexity", "--model", str(model_dir), "--data", str(tmp_path / "text.txt"),
                  "--stride", "100000", "--cache-dir", str(tmp_path / "cache"), "--no-progress")
    assert_user_error(bad, "stride must be an integer in 1..")
