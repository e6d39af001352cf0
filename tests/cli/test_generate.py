"""`gpt2kit generate` end to end: streaming, batches, JSONL output, every kind of bad input."""

from __future__ import annotations

import json

import pytest

from gpt2kit import GPT2, Tokenizer, complete, generate
from helpers import assert_user_error, run_cli


def test_greedy_stream_equals_library(model_dir):
    result = run_cli("generate", "--model", str(model_dir), "--prompt", "The King said", "--max-new-tokens", "12",
                     "--temperature", "0")
    assert result.returncode == 0, result.stderr
    tok = Tokenizer.from_pretrained()
    ids = generate(GPT2.from_pretrained(model_dir), tok.encode("The King said"), max_new_tokens=12, temperature=0)[0]
    if ids and ids[-1] == 50256:
        ids = ids[:-1]
    assert result.stdout == "The King said" + tok.decode(ids) + "\n"
    assert "random, untrained weights" in result.stderr
    assert "stands in" not in result.stderr  # the shipped model is trained


def test_samples_are_seeded(model_dir):
    args = ("generate", "--model", str(model_dir), "--max-new-tokens", "8", "--num-samples", "2", "--top-k", "40",
            "--top-p", "0.9", "--temperature", "0.8", "--batch-size", "1")
    a, b = run_cli(*args, "--seed", "1"), run_cli(*args, "--seed", "1")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert a.stdout.count("======== sample") == 2


def test_outputs_are_labelled_by_what_they_are(model_dir, tmp_path):
    base = ("generate", "--model", str(model_dir), "--prompt", "In the beginning", "--max-new-tokens", "6")
    beams = run_cli(*base, "--num-beams", "3", "--num-return-sequences", "2", "--seed", "1")
    assert beams.returncode == 0, beams.stderr
    assert [line for line in beams.stdout.splitlines() if line.startswith("====")] == \
        ["======== beam 1 ========", "======== beam 2 ========"]
    # beam search is deterministic unless --do-sample: the seed changes nothing, and it equals the library's
    assert run_cli(*base, "--num-beams", "3", "--num-return-sequences", "2", "--seed", "2").stdout == beams.stdout
    expected = complete(GPT2.from_pretrained(model_dir), Tokenizer.from_pretrained(), "In the beginning",
                        num_beams=3, num_return_sequences=2, max_new_tokens=6)
    assert beams.stdout.splitlines()[1::2] == [c.prompt + c.text for c in expected]
    out = tmp_path / "sampled.jsonl"
    sampled = run_cli(*base, "--num-beams", "3", "--do-sample", "--top-k", "20", "--seed", "1", "--output", str(out))
    assert sampled.returncode == 0, sampled.stderr
    assert f"wrote 1 beam to {out}" in sampled.stderr
    greedy = run_cli(*base, "--num-samples", "2", "--temperature", "0")
    assert [line for line in greedy.stdout.splitlines() if line.startswith("====")] == \
        ["======== greedy 1 ========", "======== greedy 2 ========"]


def test_refuses_sampling_options_with_deterministic_beams(model_dir):
    assert_user_error(run_cli("generate", "--model", str(model_dir), "--num-beams", "2", "--top-k", "40"),
                      "top-k applies to sampling", "do-sample")


def test_prompt_file_to_jsonl(model_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("In the beginning\n\nAnd God said\nLet there be\n", encoding="utf-8")
    out = tmp_path / "out" / "samples.jsonl"
    result = run_cli("generate", "--model", str(model_dir), "--prompt-file", str(prompts), "--num-beams", "3",
                     "--num-return-sequences", "2", "--temperature", "0", "--max-new-tokens", "6",
                     "--repetition-penalty", "1.2", "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in rows] == ["In the beginning"] * 2 + ["And God said"] * 2 + ["Let there be"] * 2
    assert rows[0]["settings"]["num_beams"] == 3 and rows[0]["settings"]["repetition_penalty"] == 1.2
    expected = complete(GPT2.from_pretrained(model_dir), Tokenizer.from_pretrained(),
                        ["In the beginning", "And God said", "Let there be"], num_beams=3, num_return_sequences=2,
                        temperature=0, max_new_tokens=6, repetition_penalty=1.2)
    assert [(r["text"], r["token_ids"]) for r in rows] == [(c.text, c.token_ids) for c in expected]


def test_jsonl_with_logprobs(model_dir):
    result = run_cli("generate", "--model", str(model_dir), "--prompt", "In the beginning", "--max-new-tokens", "5",
                     "--temperature", "0", "--no-stop", "--logprobs", "2", "--output", "-")
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    (c,) = complete(GPT2.from_pretrained(model_dir), Tokenizer.from_pretrained(), "In the beginning",
                    temperature=0, max_new_tokens=5, eos_token_id=None, logprobs=2)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (c.prompt_tokens, 5)
    assert row["logprobs"] == pytest.approx(c.logprobs, abs=1e-5)  # the CLI decodes with packed weights
    for top, expected in zip(row["top_logprobs"], c.top_logprobs, strict=True):
        assert [int(k) for k in top] == list(expected)
        assert list(top.values()) == pytest.approx(list(expected.values()), abs=1e-5)
    assert row["settings"]["logprobs"] == 2


def test_stop_string_is_cut(model_dir):
    args = ("generate", "--model", str(model_dir), "--prompt", "Hi", "--max-new-tokens", "20", "--seed", "9",
            "--no-stop")
    full = run_cli(*args).stdout.rstrip("\n")
    stop = full[len(full) // 2: len(full) // 2 + 3]
    cut = run_cli(*args, "--stop", stop)
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout == full[: full.find(stop)] + "\n"


def test_stop_escapes(model_dir):
    from gpt2kit.cli.generation_options import unescape

    assert unescape("\\n") == "\n" and unescape("a\\tb\\r\\n") == "a\tb\r\n"
    assert unescape("\\\\n") == "\\n" and unescape("\\u00e9\\U0001F642") == "é🙂"
    args = ("generate", "--model", str(model_dir), "--prompt", "Hi", "--max-new-tokens", "20", "--seed", "9",
            "--no-stop")
    generated = run_cli(*args).stdout.rstrip("\n")[len("Hi"):]
    char = generated[len(generated) // 2]
    cut = run_cli(*args, "--stop", f"\\u{ord(char):04x}")
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout == "Hi" + generated[: generated.find(char)] + "\n"


# the JSONL case writes ~90 kB at the end, more than a pipe holds, so its writes fail too
@pytest.mark.parametrize("extra", [("--max-new-tokens", "1500"), ("--max-new-tokens", "250", "--num-samples", "24",
                                                                  "--output", "-")], ids=["streamed", "jsonl"])
def test_a_reader_that_stops_early_ends_it_quietly(model_dir, extra):
    """`gpt2kit generate ... | head -c 16`: no "Broken pipe" error, exit status 0."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "gpt2kit", "generate", "--model", str(model_dir),
                                "--no-stop", "--seed", "0", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert len(process.stdout.read(16)) == 16
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) in (0, 141, -13), stderr  # 141 / -13: ended by SIGPIPE, as `yes | head`
    assert "Broken pipe" not in stderr and "Traceback" not in stderr and "error" not in stderr, stderr


def test_unconditional_bf16_and_long_output(model_dir):
    result = run_cli("generate", "--model", str(model_dir), "--unconditional", "--dtype", "bf16",
                     "--max-new-tokens", "300", "--no-stop", "--seed", "0", "--output", "-")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout.splitlines()[0])
    assert row["prompt"] == "" and len(row["token_ids"]) == 300  # past the tiny model's 128-token context


@pytest.mark.parametrize(
    "args,fragments",
    [
        (("--temperature", "-1"), ("temperature",)),
        (("--top-p", "0"), ("top-p",)),
        (("--top-p", "1.5"), ("top-p",)),
        (("--top-k", "-3"), ("top-k",)),
        (("--num-beams", "0"), ("num-beams",)),
        (("--num-beams", "2", "--num-return-sequences", "3"), ("cannot exceed",)),
        (("--max-new-tokens", "-1"), ("max-new-tokens",)),
        (("--num-samples", "0"), ("num-samples",)),
        (("--dtype", "fp8"), ("--dtype", "invalid choice")),
        (("--early-stopping", "maybe"), ("early-stopping",)),
        (("--prompt", "word " * 200), ("leaves no room",)),
        (("--prompt", "a b c", "--max-length", "2"), ("max-length",)),
        (("--prompt", "a", "--stop", "C:\\dir"), ("unknown escape \\d", "write \\\\ for a backslash")),
        (("--prompt", "a", "--stop", "\\u12"), ("\\u takes 4 hex digits",)),
        (("--prompt", "a", "--bad-token-ids", "60000"), ("bad-token-ids", "outside the vocabulary")),
        (("--interactive", "--num-samples", "2"), ("--interactive", "--num-samples")),
        (("--interactive", "--prompt", "x"), ("--interactive", "--prompt")),
        (("--unconditional", "--prompt", "x"), ("--unconditional", "drop --prompt")),
        (("--prompt", "a", "--logprobs", "2"), ("--logprobs", "--output")),
        (("--prompt", "a", "--logprobs", "21", "--output", "-"), ("logprobs must be at most 20",)),
    ],
)
def test_refuses_bad_settings(model_dir, args, fragments):
    result = run_cli("generate", "--model", str(model_dir), *args)
    assert_user_error(result, *fragments)
    assert result.stdout == ""  # nothing, not even the prompt, is printed before the input is known to be good


def test_refuses_bad_prompt_files(model_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    assert_user_error(run_cli("generate", "--model", str(model_dir), "--prompt-file", str(empty)), "no prompts")
    assert_user_error(run_cli("generate", "--model", str(model_dir), "--prompt-file", str(tmp_path / "nope.txt")),
                      "not found")
    assert_user_error(run_cli("generate", "--model", str(model_dir), "--prompt-file", str(tmp_path)),
                      str(tmp_path), "is a folder")
    assert_user_error(run_cli("generate", "--model", str(model_dir), "--prompt", "x", "--num-samples", "2",
                              "--output", str(tmp_path)), "is a folder", "--output")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert_user_error(run_cli("generate", "--model", str(model_dir), "--prompt-file", str(binary)), "not UTF-8")


def test_every_flag_has_help():
    from gpt2kit.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = list(sub.choices.items())
    while commands:  # nested commands too (export onnx)
        name, command = commands.pop()
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
            if action.choices and isinstance(action.choices, dict):
                commands += [(f"{name} {n}", c) for n, c in action.choices.items()]
    assert "greedy" in sub.choices["generate"].format_help()
