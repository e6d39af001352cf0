"""A model's own special token ids: end-of-text, padding, and the start of unconditional samples.

As in transformers, `generation_config.json` (when the model was loaded from a folder that
has one) overrides `config.json`. Ids outside the vocabulary are dropped: a small-vocabulary
model saved with GPT-2's defaults cannot generate id 50256, so it cannot stop on it either.
GPT-2 has no padding token; padded positions are masked, so any id in the vocabulary serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2kit.config import read_json
from gpt2kit.errors import ConfigError
from gpt2kit.model.gpt2 import GPT2

KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")


@dataclass(frozen=True)
class SpecialIds:
    bos: int | None  # first token of an unconditional sample
    eos: tuple[int, ...]  # tokens that end a generation (generation_config.json may list several)
    pad: int  # fills left padding and the rows that have finished


def _ids(value: Any, name: str, source: str) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{source}: {name} must be a token id or a list of them, got {value!r}")
    return values


def special_ids(model: GPT2) -> SpecialIds:
    """The model's bos, eos and pad ids, each inside its vocabulary."""
    vocab = model.config.vocab_size
    found: dict[str, Any] = {"bos_token_id": model.config.bos_token_id, "eos_token_id": model.config.eos_token_id}
    source = getattr(model, "source", None)  # set by GPT2.from_pretrained
    path = Path(source) / "generation_config.json" if source else None
    if path is not None and path.is_file():
        data = read_json(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
        found.update({k: data[k] for k in KEYS if data.get(k) is not None})
    where = str(path) if path is not None else "config"
    ids = {k: [t for t in _ids(v, k, where) if 0 <= t < vocab] for k, v in found.items() if v is not None}
    eos = tuple(ids.get("eos_token_id", ()))
    bos = ids.get("bos_token_id", [])
    pad = ids.get("pad_token_id", []) or list(eos) or [0]
    return SpecialIds(bos=bos[0] if bos else None, eos=eos, pad=pad[0])
