"""The `gpt2kit` command as a user runs it: init, info, generate, and one clear line for each bad input."""

from __future__ import annotations

import pytest

from gpt2kit import GPT2, Tokenizer, generate
from helpers import assert_user_error, run_cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    result = run_cli("init", "--config", "tiny", "--out", str(out), "--seed", "3")
    assert result.returncode == 0, result.stderr
    return out


def test_info(model_dir):
    result = run_cli("info", "--model", str(model_dir))
    assert result.returncode == 0, result.stderr
    assert "3,324,736" in result.stdout
    assert "F32" in result.stdout
    assert "model.safetensors" in result.stdout
    assert "random weights" in result.stdout


def test_generate_greedy_equals_library(model_dir):
    result = run_cli("generate", "--model", str(model_dir), "--prompt", "The King said", "--max-new-tokens", "12",
                     "--temperature", "0")
    assert result.returncode == 0, result.stderr
    tok = Tokenizer.from_pretrained()
    ids = generate(GPT2.from_pretrained(model_dir), tok.encode("The King said"), max_new_tokens=12, temperature=0)[0]
    if ids and ids[-1] == 50256:
        ids = ids[:-1]
    assert result.stdout == "The King said" + tok.decode(ids) + "\n"
    assert "random, untrained weights" in result.stderr


def test_generate_samples_are_seeded(model_dir):
    args = ("generate", "--model", str(model_dir), "--max-new-tokens", "8", "--num-samples", "2", "--top-k", "40",
            "--top-p", "0.9", "--temperature", "0.8")
    a, b = run_cli(*args, "--seed", "1"), run_cli(*args, "--seed", "1")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert a.stdout.count("======== sample") == 2


def test_help_explains_every_flag():
    result = run_cli("generate", "--help")
    assert result.returncode == 0
    for flag in ("--model", "--prompt", "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed",
                 "--num-samples", "--device", "--dtype", "--no-stop"):
        assert flag in result.stdout
    assert "greedy" in result.stdout


@pytest.mark.parametrize(
    "args,fragments",
    [
        (("--temperature", "-1"), ("temperature",)),
        (("--top-p", "0"), ("top-p",)),
        (("--top-k", "-3"), ("top-k",)),
        (("--prompt", "word " * 200), ("leaves no room",)),
    ],
)
def test_generate_refuses_bad_settings(model_dir, args, fragments):
    assert_user_error(run_cli("generate", "--model", str(model_dir), *args), *fragments)


def test_missing_model_folder(tmp_path):
    assert_user_error(run_cli("generate", "--model", str(tmp_path / "absent")), "absent", "no such model folder")


def test_malformed_config_json(tmp_path, model_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{oops")
    assert_user_error(run_cli("info", "--model", str(bad)), "config.json", "malformed JSON")


def test_corrupt_weights(tmp_path):
    out = tmp_path / "m"
    assert run_cli("init", "--config", "tiny", "--out", str(out)).returncode == 0
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[:1000])
    assert_user_error(run_cli("generate", "--model", str(out), "--prompt", "x"), "model.safetensors", "truncated")


def test_unknown_preset(tmp_path):
    assert_user_error(run_cli("init", "--config", "gpt9", "--out", str(tmp_path / "m")), "unknown config preset")


def test_init_refuses_to_overwrite(model_dir):
    assert_user_error(run_cli("init", "--config", "tiny", "--out", str(model_dir)), "--overwrite")


def test_unknown_dtype(model_dir):
    result = run_cli("generate", "--model", str(model_dir), "--dtype", "fp8")
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr
