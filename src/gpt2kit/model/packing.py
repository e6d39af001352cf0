"""oneDNN-packed weights for faster CPU inference.

Decoding one token is a chain of matrix-vector products whose speed depends on the
weights' memory layout; oneDNN's packed ("blocked") layout measured 1.3-2x faster
than the plain row-major matmul here (see bench/decode.py). `pack_weights` keeps the
plain weights for training and saving, adds a packed copy for no-grad CPU inference,
and repacks by itself when the plain weight changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PACKABLE_DTYPES = (torch.float32, torch.bfloat16)


def packing_available() -> bool:
    ops = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(ops, name) for name in ("_reorder_linear_weight", "_linear_pointwise"))


class PackedWeight:
    """A packed copy of a (out, in) weight, refreshed when the weight is modified in place."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight
        self._pack()

    def _state(self) -> tuple:
        # in-place updates bump _version; .to() and .data = ... change the storage or dtype
        w = self.weight
        return w._version, w.data_ptr(), w.dtype

    def _pack(self) -> None:
        self.state = self._state()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), 1)

    def usable(self, x: torch.Tensor) -> bool:
        return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == self.weight.dtype
                and self.weight.device.type == "cpu" and self.weight.dtype in PACKABLE_DTYPES)

    def linear(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self._state() != self.state:
            self._pack()
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, bias, "none", [], "")


class PackedLinear(nn.Linear):
    """An nn.Linear (same parameters, same state dict) that uses its packed copy when it can."""

    packed: PackedWeight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.packed.weight is self.weight and self.packed.usable(x):
            return self.packed.linear(x, self.bias)
        return F.linear(x, self.weight, self.bias)


def pack_linear(linear: nn.Linear) -> None:
    linear.__class__ = PackedLinear
    linear.packed = PackedWeight(linear.weight)


def unpack_linear(linear: nn.Linear) -> None:
    if isinstance(linear, PackedLinear):
        del linear.packed
        linear.__class__ = nn.Linear
