"""The conditions of a bitwise-reproducible CPU run are set and recorded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gpt2kit.training import reproducibility as repro

needs_mkl = pytest.mark.skipif(repro._mkl() is None, reason="this torch build has no MKL")


def run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | env
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@needs_mkl
def test_a_fresh_process_gets_mkl_reproducible_mode():
    code = ("import torch\nfrom gpt2kit.training import reproducibility as r\n"
            "print(r.reproducible_math()); torch.randn(64, 64) @ torch.randn(64, 64); print(r._cbwr_mode())")
    assert run_python(code).splitlines() == ["AUTO,STRICT", "AUTO,STRICT"]


@needs_mkl
def test_too_late_in_a_process_says_so_and_how_to_fix_it():
    code = ("import torch\nfrom gpt2kit.training import reproducibility as r\n"
            "torch.randn(64, 64) @ torch.randn(64, 64)\nprint(r.reproducible_math())")
    out = run_python(code)
    assert out.startswith("off") and "MKL_CBWR=AUTO,STRICT" in out


@needs_mkl
def test_the_users_own_setting_is_left_alone():
    code = "from gpt2kit.training import reproducibility as r\nprint(r.reproducible_math()); print(r._cbwr_mode())"
    said, mode = run_python(code, MKL_CBWR="COMPATIBLE").splitlines()
    assert said == "MKL_CBWR=COMPATIBLE (set by the environment)" and mode == "COMPATIBLE"


def test_the_fingerprint_names_what_decides_rounding():
    found = repro.fingerprint()
    assert found["threads"] == torch.get_num_threads()
    assert found["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert found["torch"] == torch.__version__


def test_differences_list_each_changed_setting():
    saved = {"threads": 2, "cpu_capability": "AVX512", "torch": "2.13.0"}
    now = {"threads": 4, "cpu_capability": "AVX2", "torch": "2.13.0", "mkl_cnr": "AUTO,STRICT"}
    assert repro.differences(saved, now) == ["cpu_capability: AVX512 -> AVX2", "mkl_cnr: None -> AUTO,STRICT",
                                             "threads: 2 -> 4"]
    assert repro.differences(now, dict(now)) == []
    assert repro.differences({}, now) == []  # saved before fingerprints were recorded: nothing to compare
