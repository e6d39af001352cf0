"""`gpt2kit export onnx` end to end, and its errors on one line."""

from __future__ import annotations

import json
import sys

from gpt2kit.cli.main import main
from helpers import assert_user_error, cli, run_cli


def test_export_onnx_writes_a_checked_folder(tmp_path):
    result = run_cli("export", "onnx", "--model", "default", "--out", str(tmp_path / "onnx"), "--opset", "18")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"wrote {tmp_path / 'onnx' / 'model.onnx'} (decoder, fp32, opset 18)"
    assert lines[1].startswith("ONNX Runtime vs PyTorch: max |logits diff| ")
    assert lines[1].endswith(", top-1 agreement 100% over 5 cases (parity.json)")
    report = json.loads((tmp_path / "onnx" / "parity.json").read_text())
    assert report["passed"] and report["max_abs_diff"] <= 1e-4  # the shipped, trained model
    config = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert config["gpt2kit"]["origin"].startswith("gpt2kit's default model")  # the source's notes are kept

    result = cli("export", "onnx", "--out", str(tmp_path / "onnx"))
    assert_user_error(result, "onnx: already exists and is not empty (pass --overwrite")

    # the exported folder generates through --backend onnxruntime: the same greedy text as PyTorch
    greedy = ("generate", "--prompt", "And the LORD said", "--max-new-tokens", "40", "--temperature", "0")
    torch_run = run_cli(*greedy)
    ort_run = run_cli(*greedy, "--model", str(tmp_path / "onnx"), "--backend", "onnxruntime")
    assert torch_run.returncode == 0 and ort_run.returncode == 0, ort_run.stderr
    assert ort_run.stdout == torch_run.stdout and len(ort_run.stdout) > 60
    # the shipped (PyTorch) model with --backend onnxruntime: exported on first use into the cache, said on stderr
    first_use = run_cli(*greedy, "--backend", "onnxruntime", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert first_use.returncode == 0 and first_use.stdout == torch_run.stdout, first_use.stderr
    assert f"gpt2kit: exporting default to ONNX (fp32) in {tmp_path / 'cache'}" in first_use.stderr
    assert_user_error(cli(*greedy, "--model", str(tmp_path / "onnx")), "holds an ONNX export",
                      "--backend onnxruntime")


def test_opset_too_old_is_one_line(tmp_path):
    result = run_cli("export", "onnx", "--out", str(tmp_path / "o"), "--opset", "11")
    assert_user_error(result, "opset 11 is too old", "needs opset 14 or newer")
    assert not (tmp_path / "o").exists()


def test_missing_onnx_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails
    assert main(["export", "onnx", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err == "gpt2kit: error: ONNX export needs onnx, which is not installed: pip install 'gpt2kit[onnx]'\n"
