"""Hugging Face model folders: safetensors (single or sharded) and pytorch_model.bin.

A gpt2kit model folder *is* such a folder: config.json, model.safetensors,
generation_config.json and the tokenizer files. Names and shapes: layouts.HF.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from gpt2kit.errors import WeightsError
from gpt2kit.weights.files import file_kind, inside
from gpt2kit.weights.layouts import HF, HF_BASE, DictSource, Layout, TensorSource

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def find_weights_file(folder: Path) -> Path | None:
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)


def _corrupt(path: Path, err: Exception, kind: str) -> WeightsError:
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return WeightsError(f"{path}: corrupt or truncated {kind} file ({detail[:160]})")


class SafetensorsSource:
    """Tensors of one or more safetensors files, read lazily (memory-mapped)."""

    def __init__(self, paths: list[Path]) -> None:
        self.where: dict[str, Path] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, str] = {}  # safetensors' dtype codes ("F32", "BF16", ...)
        for path in paths:
            if not path.is_file():
                raise WeightsError(f"{path}: weights file not found")
            try:
                with safe_open(str(path), framework="pt") as f:
                    for name in f.keys():  # noqa: SIM118 (safe_open has no iterator)
                        self.where[name] = path
                        piece = f.get_slice(name)
                        self.shapes[name] = tuple(piece.get_shape())
                        self.dtypes[name] = piece.get_dtype()
            except (SafetensorError, OSError) as err:
                raise _corrupt(path, err, "safetensors") from None

    def names(self) -> list[str]:
        return list(self.where)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def load(self, name: str) -> torch.Tensor:
        path = self.where[name]
        try:
            with safe_open(str(path), framework="pt") as f:
                return f.get_tensor(name)
        except (SafetensorError, OSError) as err:
            raise _corrupt(path, err, "safetensors") from None


def open_weights(path: Path) -> tuple[TensorSource, Layout]:
    """The tensors of a Hugging Face weights file and the naming they use."""
    if path.name.endswith(".index.json"):
        try:
            weight_map = json.loads(path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            raise WeightsError(f"{path}: malformed shard index (expected a JSON object with 'weight_map')") from None
        if not isinstance(weight_map, dict) or not all(isinstance(s, str) for s in weight_map.values()):
            raise WeightsError(f"{path}: malformed shard index ('weight_map' must map tensor names to file names)")
        shards = [inside(path.parent, s, path, "shard") for s in sorted(set(weight_map.values()))]
        source: TensorSource = SafetensorsSource(shards)
    elif path.suffix == ".safetensors" or file_kind(path) == "safetensors":
        source = SafetensorsSource([path])
    else:
        source = DictSource(_read_torch_bin(path))
    # GPT2LMHeadModel prefixes "transformer."; GPT2Model (as the hub's gpt2 repos store it) does not
    layout = HF if any(n.startswith("transformer.") for n in source.names()) else HF_BASE
    return source, layout


def torch_load(path: Path, what: str = "plain state dicts") -> Any:
    """A torch.save file, unpickled with weights_only=True only (tensors and plain containers: a
    pickle can run code); a refusal or a damaged file is one line naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise WeightsError(
            f"{path}: refused to unpickle: the file holds objects other than tensors "
            f"(only {what} load; {first[:120]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise _corrupt(path, err, "PyTorch") from None


def _read_torch_bin(path: Path) -> dict[str, torch.Tensor]:
    data = torch_load(path)
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(data).__name__}")
    return data


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def write_safetensors(state_dict: dict[str, torch.Tensor], path: Path, names: dict[str, str] | None = None) -> None:
    """Stream a safetensors file, one converted tensor in memory at a time (the library's
    save_file serialises everything at once, which triples peak memory for large models).
    `names` gives the file names of tensors outside GPT-2's layout (a classifier's head), stored as they are."""
    names = names or {}
    items = sorted((names[k] if k in names else HF.file_name(k), k) for k in state_dict)
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for file_name, ours in items:
        t = state_dict[ours]
        if t.dtype not in SAFETENSORS_DTYPES:
            raise WeightsError(f"cannot write tensor '{ours}' of dtype {t.dtype} to safetensors")
        size = t.numel() * t.element_size()
        shape = tuple(t.shape) if ours in names else HF.file_shape(ours, tuple(t.shape))
        header[file_name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(shape),
                             "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for _, ours in items:
            t = state_dict[ours].detach() if ours in names else HF.to_file(ours, state_dict[ours].detach())
            t = t.to("cpu").contiguous()
            f.write(t.reshape(-1).view(torch.uint8).numpy())  # buffer protocol: no extra copy
