"""`gpt2kit eval`: the commands as a user runs them, their output files and their one-line errors."""

from __future__ import annotations

import json

import pytest

from gpt2kit import GPT2, Tokenizer, perplexity
from gpt2kit.cli.main import main
from helpers import run_cli


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



def test_perplexity_error_is_one_line(model_dir, tmp_path, capsys):
    (tmp_path / "text.txt").write_text("In the beginning God created the heaven and the earth.")
    assert main(["eval", "perplexity", "--model", str(model_dir), "--data", str(tmp_path / "text.txt"),
                 "--stride", "100000", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 1
    assert "gpt2kit: error: stride must be an integer in 1..128 (the model's context), got 100000" in \
        capsys.readouterr().err


def test_rouge_of_a_predictions_file(tmp_path):
    from gpt2kit.evaluation.rouge import score_pairs

    pairs = [("the cat sat on the mat.", "a cat sat on a mat."), ("Dogs run.", "dogs ran quickly."),
             ("", "an empty summary scores zero.")]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": f"a{i}", "summary": s, "reference": r}) + "\n"
                                              for i, (s, r) in enumerate(pairs)))
    out = tmp_path / "scores.jsonl"
    result = run_cli("eval", "rouge", "--predictions", str(tmp_path / "p.jsonl"), "--metric", "mindspore",
                     "--output", str(out), "--json", str(tmp_path / "avg.json"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expected = score_pairs([s for s, _ in pairs], [r for _, r in pairs], metric="mindspore")
    assert [r["id"] for r in records] == ["a0", "a1", "a2"] and [r["scores"] for r in records] == expected
    averages = json.loads((tmp_path / "avg.json").read_text())[str(tmp_path / "p.jsonl")]["scores"]
    assert averages["rouge1"]["mean"] == pytest.approx(sum(e["rouge1"] for e in expected) / 3)
    assert averages["rouge1"]["low"] <= averages["rouge1"]["mean"] <= averages["rouge1"]["high"]
    assert "Rouge-AVG" in result.stdout



def test_rouge_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"summary": "x"}) + "\n")
    assert main(["eval", "rouge", "--predictions", str(tmp_path / "bad.jsonl")]) == 1
    assert capsys.readouterr().err.strip().endswith("bad.jsonl:1: no 'reference' field (a predictions file holds "
                                                    "JSON lines with 'summary' and 'reference' strings)")
    with pytest.raises(SystemExit):
        main(["eval", "rouge", "--predictions", str(tmp_path / "bad.jsonl"), "--metric", "bleu"])
    assert "invalid choice: 'bleu'" in capsys.readouterr().err
    assert main(["eval", "rouge", "--data", str(tmp_path / "bad.jsonl"), "--limit", "0"]) == 1
    assert "--limit must be at least 1, got 0" in capsys.readouterr().err


def test_rouge_of_a_model_against_another(model_dir, tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).parents[1] / "fixtures" / "cnndm" / "test.parquet"
    assert main(["eval", "rouge", "--model", str(model_dir), "--compare", str(model_dir), "--data", str(data),
                 "--limit", "2", "--max-new-tokens", "4", "--seed", "1", "--bootstrap", "50",
                 "--output", str(tmp_path / "r.jsonl")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| model | dataset | articles | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum | Rouge-AVG |"
    assert table[2].startswith(f"| {model_dir} (fine-tuned) | {data} | 2 |")
    assert table[3].startswith(f"| {model_dir} (zero-shot) | {data} | 2 |")
    assert table[2].split("|")[4:] == table[3].split("|")[4:]  # the same model and seed: the same summaries
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[0]["prompt"].endswith(" TL;DR:") and set(records[0]["scores"]) == {
        "rouge1", "rouge2", "rougeL", "rougeLsum", "rouge-avg"}
