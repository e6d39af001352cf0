"""Device names -> torch devices, checked before any work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from gpt2kit.errors import GPT2KitError


def resolve_device(name: str) -> torch.device:
    """cpu, cuda, cuda:N or auto (CUDA when available): an unknown name or an absent GPU is one clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GPT2KitError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GPT2KitError(f"device {name!r} asked for, but this PyTorch sees no CUDA GPU")
    return device


def slow_dtype_warning(dtype: torch.dtype, device: torch.device, remedy: str = "fp32") -> str | None:
    """A one-line warning when `dtype` has no fast matrix products on `device`, else None.

    On a CPU without AVX512-BF16 or AMX (AVX2-only x86, for one), PyTorch multiplies bf16
    matrices with a scalar fallback: measured 46x slower than fp32 for a 1024x768x768 product
    on an AVX2 machine, so a user who picked bf16 for speed gets the opposite."""
    if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16) or _fast_on_cpu(dtype):
        return None
    name = "bf16" if dtype == torch.bfloat16 else "fp16"
    return (f"warning: this CPU has no {name} matrix instructions, so {name} runs many times slower than fp32 here; "
            f"use {remedy} on this machine")


def _fast_on_cpu(dtype: torch.dtype) -> bool:
    """Whether oneDNN has native kernels for `dtype` on this CPU (what PyTorch's CPU matmuls use for it)."""
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


@contextmanager
def torch_threads(model: object) -> Iterator[None]:
    """PyTorch's thread count for the per-step work of decoding `model` (sampling, penalties, the
    argmax): the model's `step_threads` when it has one, else left as it is.

    A backend that runs on threads of its own (ONNX Runtime) keeps them ready between steps, so
    PyTorch's small per-step operations, split over every core, wait for a core; on one thread they
    do not (measured: ONNX Runtime int8, batch 1, top-k/top-p sampling 47 -> 54 tok/s)."""
    threads, before = getattr(model, "step_threads", None), torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
