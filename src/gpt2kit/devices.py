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
