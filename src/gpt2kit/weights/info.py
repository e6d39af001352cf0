"""What a model folder holds, read without loading its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from gpt2kit.config import GPT2Config, read_json
from gpt2kit.errors import WeightsError
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.weights.folder import METADATA_KEY, detect_format
from gpt2kit.weights.hf import find_weights_file
from gpt2kit.weights.mindspore import find_ckpt, infer_config, read_ckpt, strip_prefix
from gpt2kit.weights.openai import checkpoint_prefix
from gpt2kit.weights.resolve import resolve_model_path
from gpt2kit.weights.tensorbundle import TensorBundle


def describe_model(name_or_path: str | Path) -> dict[str, Any]:
    folder = resolve_model_path(name_or_path)
    fmt = detect_format(folder)
    raw: dict[str, Any] = {}
    dtypes: set[str] = set()
    if fmt == "hf":
        raw = read_json(folder / "config.json")
        config = GPT2Config.from_hf_dict(raw, source=str(folder / "config.json"))
        weights = find_weights_file(folder)
        if weights is not None and weights.suffix == ".safetensors":
            try:
                with safe_open(str(weights), framework="pt") as f:
                    dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118
            except (SafetensorError, OSError) as err:
                raise WeightsError(f"{weights}: corrupt or truncated safetensors file ({err})") from None
    elif fmt == "openai":
        config = GPT2Config.from_file(folder / "hparams.json")
        bundle = TensorBundle(checkpoint_prefix(folder))
        dtypes = {str(e.dtype).removeprefix("torch.") for e in bundle.entries.values()}
    else:
        ckpt = find_ckpt(folder)
        tensors = strip_prefix(read_ckpt(ckpt))
        config = infer_config(tensors, ckpt)
        dtypes = {str(t.dtype).removeprefix("torch.") for t in tensors.values()}
    with torch.device("meta"):
        n_params = GPT2(config).num_parameters()
    files = [folder] if folder.is_file() else sorted(p for p in folder.iterdir() if p.is_file())
    return {
        "path": str(folder),
        "format": fmt,
        "config": config,
        "parameters": n_params,
        "dtype": ", ".join(sorted(dtypes)) or "unknown",
        "files": {p.name: p.stat().st_size for p in files},
        "metadata": raw.get(METADATA_KEY, {}) if isinstance(raw, dict) else {},
    }
