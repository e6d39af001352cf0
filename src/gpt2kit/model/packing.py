"""oneDNN-packed weights for faster CPU inference.

Decoding one token is a chain of matrix-vector products whose speed depends on the
weights' memory layout; oneDNN's packed ("blocked") layout measured 1.3-2x faster
than the plain row-major matmul here (see bench/decode.py). `pack_weights` keeps the
plain weights for training and saving, adds a packed copy for no-grad CPU inference,
and repacks by itself when the plain weight changes.

A change is any of: an in-place op on the weight (its version counter `_version`
moves: `copy_`, `load_state_dict`, optimizer steps), a new storage (`.data = t`,
`.to()`), another tensor in its place (`load_state_dict(assign=True)`, `linear.weight
= p`), or a use of `.data`: that alias has a version counter of its own, so
`w.data.copy_(t)` leaves `w._version` as it was. Packed weights are therefore
`WatchedParameter`s, which count their `.data` accesses.
"""

from __future__ import annotations

import functools
import weakref

import torch
import torch.nn.functional as F
from torch import nn

PACKABLE_DTYPES = (torch.float32, torch.bfloat16)


def packing_available() -> bool:
    ops = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(ops, name) for name in ("_reorder_linear_weight", "_linear_pointwise"))


@functools.cache
def packable(dtype: torch.dtype) -> bool:
    """Whether oneDNN packs `dtype` weights on this CPU (bf16 needs AVX512 or AVX-NE-CONVERT)."""
    if dtype not in PACKABLE_DTYPES or not packing_available():
        return False
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(torch.ones(8, 8, dtype=dtype), 1)
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 8, dtype=dtype), packed, None, "none", [], "")
    except RuntimeError:
        return False
    return True


class WatchedParameter(nn.Parameter):
    """A Parameter that counts reads and writes of `.data` (see the module docstring)."""

    @property
    def data(self) -> torch.Tensor:
        self.__dict__["_data_uses"] = self.__dict__.get("_data_uses", 0) + 1
        return torch.Tensor.data.__get__(self, type(self))

    @data.setter
    def data(self, value: torch.Tensor) -> None:
        self.__dict__["_data_uses"] = self.__dict__.get("_data_uses", 0) + 1
        torch.Tensor.data.__set__(self, value)


def watch(weight: torch.Tensor) -> None:
    if type(weight) is nn.Parameter:
        weight.__class__ = WatchedParameter


def unwatch(weight: torch.Tensor) -> None:
    if type(weight) is WatchedParameter:
        weight.__class__ = nn.Parameter
        weight.__dict__.pop("_data_uses", None)


def _nothing() -> None:
    return None


def _state(w: torch.Tensor) -> tuple:
    # read on every packed matmul, so kept short: a new device or shape comes with a new data_ptr
    return w._version, w.data_ptr(), w.dtype, w.__dict__.get("_data_uses", 0)


class PackedWeight:
    """The packed copy of an (out, in) weight, redone when it is given another tensor or the
    tensor has changed since it was packed."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.pack(weight)

    def pack(self, weight: torch.Tensor) -> None:
        watch(weight)
        self.state = _state(weight)
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)
        self.source = weakref.ref(weight)

    @staticmethod
    def usable(weight: torch.Tensor, x: torch.Tensor) -> bool:
        return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == weight.dtype
                and weight.device.type == "cpu" and packable(weight.dtype))

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.source() is not weight or _state(weight) != self.state:
            self.pack(weight)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, bias, "none", [], "")

    def __getstate__(self) -> dict:
        return {}  # copies (deepcopy, pickle) pack again when first used: the packed tensor is opaque

    def __setstate__(self, state: dict) -> None:
        self.state, self.packed, self.source = None, None, _nothing

    def release(self) -> None:
        weight = self.source()
        if weight is not None:
            unwatch(weight)


class PackedLinear(nn.Linear):
    """An nn.Linear (same parameters, same state dict) that uses its packed copy when it can."""

    packed: PackedWeight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.packed.usable(self.weight, x):
            return self.packed.linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def pack_linear(linear: nn.Linear, packed: PackedWeight) -> None:
    linear.__class__ = PackedLinear
    linear.packed = packed


def unpack_linear(linear: nn.Linear) -> None:
    if isinstance(linear, PackedLinear):
        linear.packed.release()
        unwatch(linear.weight)
        del linear.packed
        linear.__class__ = nn.Linear
