"""Hugging Face model folders: the names and layout of GPT2LMHeadModel's tensors.

A gpt2kit model folder *is* such a folder: config.json, model.safetensors,
generation_config.json and the tokenizer files. The key map is declarative; the
Conv1D transpose ([in, out] on disk, [out, in] in nn.Linear) happens here only.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gpt2kit.errors import WeightsError

PREFIX = "transformer."
# Conv1D weights stored [in, out]; nn.Linear wants [out, in].
TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Tensors a Hugging Face file may hold that are not weights of ours: causal-mask buffers,
# and the LM head, which GPT-2 ties to wte.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
IGNORED = ("lm_head.weight",)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """gpt2kit names/layout -> GPT2LMHeadModel's."""
    out = {}
    for name, t in state_dict.items():
        if name.endswith(TRANSPOSED):
            t = t.t()
        out[PREFIX + name] = t.contiguous()
    return out


def from_hf_name(name: str) -> str | None:
    """GPT2LMHeadModel (or GPT2Model) name -> ours; None for tensors that are not weights."""
    if name in IGNORED or name.endswith(IGNORED_SUFFIXES):
        return None
    return name.removeprefix(PREFIX)


def find_weights_file(folder: Path) -> Path | None:
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, a sharded safetensors index, or a pytorch_model.bin
    (unpickled with weights_only=True: never arbitrary objects), under their file names."""
    if path.name.endswith(".index.json"):
        return _read_sharded(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _read_torch_bin(path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"{path}: corrupt or truncated safetensors file ({detail})") from None


def _read_sharded(index: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise WeightsError(f"{index}: malformed shard index (expected a JSON object with 'weight_map')") from None
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        tensors.update(_read_safetensors(index.parent / shard))
    return tensors


def _read_torch_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise WeightsError(
            f"{path}: refused to unpickle: the file holds objects other than tensors "
            f"(only plain state dicts load; {first[:120]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"{path}: corrupt or truncated PyTorch file ({detail[:160]})") from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(data).__name__}")
    return data


def write_safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    save_file(to_hf(state_dict), str(path), metadata={"format": "pt"})
