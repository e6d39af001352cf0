"""Device names -> torch devices, checked before any work."""

from __future__ import annotations

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
