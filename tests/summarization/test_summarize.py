"""`summarize`: the recipes' prompts and post-processing, greedy summaries equal to transformers'
generate on the same weights and prompt, streaming equal to batching, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gpt2kit import Tokenizer
from gpt2kit.cli.main import main
from gpt2kit.summarization import SummarizationError, recipe
from gpt2kit.summarization.summarize import summarize, summarize_stream, summary_prompt
from helpers import hf_pair, run_cli, tiny_config

CNNDM = Path(__file__).parents[1] / "fixtures" / "cnndm"
TOK = Tokenizer.from_pretrained()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("summ")


@pytest.fixture(scope="module")
def pair(folder):
    """transformers' model with random weights, and gpt2kit's load of what it saved in folder/hf."""
    return hf_pair(folder, tiny_config(n_positions=64), seed=5)


def test_prompts():
    mindspore, paper, tf2 = recipe("mindspore"), recipe("gpt2-paper"), recipe("tf2")
    article = "The council met.\nIt voted for a bridge. Work starts in May and"
    assert summary_prompt(article, TOK, mindspore, 1024, 100) == "The council met. It voted for a bridge. TL;DR:"
    assert summary_prompt(article, TOK, paper, 1024, 100) == article + "\nTL;DR:"
    assert summary_prompt(article, TOK, tf2, 1024, 100) == article + "\nTL;DR:\n"
    assert summary_prompt("Riverton votes .", TOK, mindspore, 1024, 100) == "Riverton votes . TL;DR:"
    long = " ".join(f"Sentence number {i} is here." for i in range(100))
    prompt = summary_prompt(long, TOK, mindspore, 64, 20)
    assert len(TOK.encode(prompt)) <= 44 and prompt.endswith("is here. TL;DR:") and long.startswith(prompt[:-7])
    with pytest.raises(SummarizationError, match="a context of 64 tokens is too short for the prompt plus any "
                                                 "summary: the separator ' TL;DR:' takes 4 and --max-new-tokens 60"):
        summary_prompt(long, TOK, mindspore, 64, 60)
    with pytest.raises(SummarizationError, match="empty article"):
        summary_prompt("  \n", TOK, mindspore, 64, 10)


def test_postprocessing():
    mindspore, paper = recipe("mindspore"), recipe("gpt2-paper")
    text = " One. Two is 2.5 long. Three. Four.<|endoftext|>junk"
    assert mindspore.postprocess(text) == "One. Two is 2.5 long."  # the third "." by a plain search, as MindSpore does
    assert paper.postprocess(text) == "One. Two is 2.5 long. Three."
    assert mindspore.postprocess(" no period at all\n<|endoftext|> more") == "no period at all"
    assert paper.postprocess("") == ""


def test_greedy_summaries_are_transformers_generate(pair):
    hf, ours = pair
    articles = [json.loads(line)["article"] for line in (CNNDM / "test.jsonl").read_text().splitlines()[:3]]
    summaries = summarize(ours.eval(), TOK, articles, temperature=0, max_new_tokens=12, batch_size=2)
    for article, s in zip(articles, summaries, strict=True):
        assert s.prompt == summary_prompt(article, TOK, recipe("mindspore"), 64, 12)
        ids = torch.tensor([TOK.encode(s.prompt)])
        with torch.no_grad():
            out = hf.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=50256, eos_token_id=50256)
        new = out[0, ids.shape[1]:].tolist()
        expected = TOK.decode(new[:new.index(50256)] if 50256 in new else new)
        assert s.generated == expected and s.summary == recipe("mindspore").postprocess(expected)


def test_stream_gives_the_batch_summary(pair):
    _, ours = pair
    article = json.loads((CNNDM / "test.jsonl").read_text().splitlines()[4])["article"]
    (batched,) = summarize(ours.eval(), TOK, [article], seed=3, max_new_tokens=20)
    prompt, pieces = summarize_stream(ours, TOK, article, seed=3, max_new_tokens=20)
    assert prompt == batched.prompt and "".join(pieces) == batched.summary
    with pytest.raises(SummarizationError, match="one summary per article"):
        summarize(ours, TOK, [article], num_samples=2)


def test_cli(pair, folder, tmp_path, capsys):
    model_dir = folder / "hf"
    out = tmp_path / "s.jsonl"
    result = run_cli("summarize", "--model", str(model_dir), "--input", str(CNNDM / "test.csv"), "--limit", "2",
                     "--max-new-tokens", "8", "--seed", "1", "--output", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [json.loads(line)["id"] for line in (CNNDM / "test.jsonl").read_text().splitlines()[:2]]
    assert [r["id"] for r in records] == ids
    assert records[0]["reference"] == ("Riverton will build a footbridge over the Elm River .\n"
                                       "It will cost 4 million dollars .")
    article = json.loads((CNNDM / "test.jsonl").read_text().splitlines()[0])["article"]
    assert records[0]["prompt"] == summary_prompt(article, TOK, recipe("mindspore"), 64, 8)
    assert main(["summarize", "--model", str(model_dir), "--text", "An article.", "--max-new-tokens", "200"]) == 1
    assert "too short for the prompt plus any summary" in capsys.readouterr().err
