"""The `gpt2kit` command as a user runs it: init, info, generate, and one clear line for each bad input."""

from __future__ import annotations

from helpers import assert_user_error, cli, run_cli


def test_info(model_dir):
    result = run_cli("info", "--model", str(model_dir))
    assert result.returncode == 0, result.stderr
    assert "3,324,736" in result.stdout
    assert "fp32" in result.stdout
    assert "model.safetensors" in result.stdout
    assert "random weights" in result.stdout


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


def test_abbreviated_options_are_refused(model_dir, tmp_path):
    # `--length` would be taken for `--length-penalty`, `--steps` for `--steps-per-epoch`
    result = run_cli("generate", "--model", str(model_dir), "--prompt", "x", "--length", "20")
    assert_user_error(result, "unrecognized arguments: --length 20")
    result = run_cli("finetune", "--data", "x.txt", "--out", str(tmp_path / "run"), "--from-scratch", "tiny",
                     "--max-steps", "1", "--steps", "5")
    assert_user_error(result, "unrecognized arguments: --steps 5")
    assert_user_error(run_cli("info", "--mod", str(model_dir)), "unrecognized arguments: --mod")


def test_info_takes_the_model_as_positional_or_option_and_default_is_the_shipped_model(model_dir):
    positional = cli("info", str(model_dir))
    assert positional.returncode == 0, positional.stderr
    assert positional.stdout == cli("info", "--model", str(model_dir)).stdout
    shipped = cli("info", "default")
    assert shipped.returncode == 0, shipped.stderr
    assert "default_model" in shipped.stdout
    assert cli("info", "--model", "default").stdout == shipped.stdout
    assert_user_error(cli("info", str(model_dir), "--model", "default"), "two models given")
