"""Device and dtype choices: refused or warned about before any work."""

from __future__ import annotations

import pytest
import torch

from gpt2kit import devices
from gpt2kit.errors import GPT2KitError


def test_unknown_device_is_one_line():
    with pytest.raises(GPT2KitError, match="unknown device 'gpu0'"):
        devices.resolve_device("gpu0")


@pytest.mark.parametrize("dtype,name", [(torch.bfloat16, "bf16"), (torch.float16, "fp16")])
def test_a_half_dtype_without_cpu_instructions_is_warned_about(monkeypatch, dtype, name):
    monkeypatch.setattr(devices, "_fast_on_cpu", lambda d: False)
    message = devices.slow_dtype_warning(dtype, torch.device("cpu"))
    assert message.startswith("warning:") and name in message and "use fp32" in message
    monkeypatch.setattr(devices, "_fast_on_cpu", lambda d: True)
    assert devices.slow_dtype_warning(dtype, torch.device("cpu")) is None


def test_fp32_and_gpus_are_never_warned_about(monkeypatch):
    monkeypatch.setattr(devices, "_fast_on_cpu", lambda d: False)
    assert devices.slow_dtype_warning(torch.float32, torch.device("cpu")) is None
    assert devices.slow_dtype_warning(torch.bfloat16, torch.device("cuda")) is None


def test_the_warning_names_the_flag_that_fixes_it(monkeypatch):
    monkeypatch.setattr(devices, "_fast_on_cpu", lambda d: False)
    assert devices.slow_dtype_warning(torch.bfloat16, torch.device("cpu"), "--dtype fp32").endswith(
        "use --dtype fp32 on this machine")



def test_torch_threads_follow_the_models_step_threads_and_are_restored():
    from types import SimpleNamespace

    from gpt2kit.devices import torch_threads

    before = torch.get_num_threads()
    with torch_threads(SimpleNamespace()):  # a model without step_threads: left as set
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"), torch_threads(SimpleNamespace(step_threads=1)):
        assert torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
