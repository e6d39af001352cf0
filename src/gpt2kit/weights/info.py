"""What a model folder holds, read without loading its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from gpt2kit.config import GPT2Config, read_json
from gpt2kit.errors import WeightsError
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.weights.folder import METADATA_KEY
from gpt2kit.weights.hf import find_weights_file
from gpt2kit.weights.resolve import resolve_model_path


def describe_model(name_or_path: str | Path) -> dict[str, Any]:
    folder = resolve_model_path(name_or_path)
    raw = read_json(folder / "config.json")
    config = GPT2Config.from_hf_dict(raw, source=str(folder / "config.json"))
    with torch.device("meta"):
        n_params = GPT2(config).num_parameters()
    weights = find_weights_file(folder)
    dtypes: set[str] = set()
    if weights is not None and weights.suffix == ".safetensors":
        try:
            with safe_open(str(weights), framework="pt") as f:
                dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as err:
            raise WeightsError(f"{weights}: corrupt or truncated safetensors file ({err})") from None
    return {
        "path": str(folder),
        "config": config,
        "parameters": n_params,
        "dtype": ", ".join(sorted(dtypes)) or "unknown",
        "weights": weights.name if weights else None,
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()},
        "metadata": raw.get(METADATA_KEY, {}),
    }
