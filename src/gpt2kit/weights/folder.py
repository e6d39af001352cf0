"""Load and save model folders.

Loading builds the model on the meta device and assigns the file's tensors, so no
random initialisation runs and no second copy of the weights is made.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from gpt2kit.config import GPT2Config, read_json
from gpt2kit.errors import WeightsError
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.weights.hf import (
    TRANSPOSED,
    WEIGHT_FILES,
    find_weights_file,
    from_hf_name,
    read_weights,
    write_safetensors,
)
from gpt2kit.weights.resolve import resolve_model_path

METADATA_KEY = "gpt2kit"  # our own notes inside config.json (transformers ignores unknown keys)


def load_model(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> GPT2:
    """A GPT2 from a model folder or a published name; fp32 unless `dtype` says otherwise."""
    folder = resolve_model_path(name_or_path)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise WeightsError(f"{folder}: no config.json (a model folder holds config.json and model.safetensors)")
    raw = read_json(config_path)
    config = GPT2Config.from_hf_dict(raw, source=str(config_path))
    weights_path = find_weights_file(folder)
    if weights_path is None:
        raise WeightsError(f"{folder}: no weights file (looked for {', '.join(WEIGHT_FILES)})")
    tensors = read_weights(weights_path)

    with torch.device("meta"):
        model = GPT2(config)
    state = _match_state_dict(model, tensors, weights_path, dtype or torch.float32)
    model.load_state_dict(state, assign=True)
    model.metadata = raw.get(METADATA_KEY, {}) if isinstance(raw, dict) else {}
    model.source = str(folder)
    model.eval()
    return model.to(device) if device is not None else model


def _match_state_dict(
    model: GPT2, tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """The file's tensors under our names, checked one by one against the config's shapes."""
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for file_name, tensor in tensors.items():
        name = from_hf_name(file_name)
        if name is None:
            continue
        if name not in expected:
            raise WeightsError(f"{path}: unexpected tensor '{file_name}' (not part of a GPT-2 language model)")
        want = tuple(expected[name].shape)
        transposed = name.endswith(TRANSPOSED)
        file_want = tuple(reversed(want)) if transposed else want
        if tuple(tensor.shape) != file_want:
            raise WeightsError(
                f"{path}: tensor '{file_name}' has shape {tuple(tensor.shape)}, the config implies {file_want}"
            )
        if transposed:
            tensor = tensor.t()
        if not tensor.is_floating_point():
            raise WeightsError(f"{path}: tensor '{file_name}' has dtype {tensor.dtype}, expected floating point")
        state[name] = tensor.to(dtype).contiguous()
    missing = [n for n in expected if n not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise WeightsError(f"{path}: missing tensor '{missing[0]}'{more}")
    return state


def save_model(
    model: GPT2,
    path: str | Path,
    *,
    tokenizer: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write config.json, model.safetensors, generation_config.json and tokenizer files.

    Files are written to a temporary folder first and moved into place one by one with
    os.replace, so an interruption never leaves a half-written file under its real name.
    """
    from gpt2kit.tokenizer import Tokenizer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer or Tokenizer.from_pretrained()
    metadata = {**getattr(model, "metadata", {}), **(metadata or {})}
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        write_safetensors(state, tmp / "model.safetensors")
        model.config.save(tmp / "config.json", extra={METADATA_KEY: metadata} if metadata else None)
        generation = {"bos_token_id": model.config.bos_token_id, "eos_token_id": model.config.eos_token_id}
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        tokenizer.save_pretrained(tmp)
        if not path.exists():
            os.rename(tmp, path)
        else:
            path.mkdir(exist_ok=True)
            # weights last: a folder is loadable only once its config matches its weights
            names = sorted(os.listdir(tmp), key=lambda n: n == "model.safetensors")
            for name in names:
                os.replace(tmp / name, path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
