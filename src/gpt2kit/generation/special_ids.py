"""A model's own special token ids: end-of-text, padding, and the start of unconditional samples.

As in transformers, `generation_config.json` (the decoder's `generation_config`, read and
checked when the model is loaded) overrides `config.json`. Ids outside the vocabulary are
dropped: a small-vocabulary model saved with GPT-2's defaults cannot generate id 50256, so it
cannot stop on it either. GPT-2 has no padding token; padded positions are masked, so any id
in the vocabulary serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpt2kit.backends.decoder import Decoder

KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")


@dataclass(frozen=True)
class SpecialIds:
    bos: int | None  # first token of an unconditional sample
    eos: tuple[int, ...]  # tokens that end a generation (generation_config.json may list several)
    pad: int  # fills left padding and the rows that have finished


def special_ids(decoder: Decoder) -> SpecialIds:
    """The decoder's bos, eos and pad ids, each inside its vocabulary."""
    vocab = decoder.config.vocab_size
    found = {"bos_token_id": decoder.config.bos_token_id, "eos_token_id": decoder.config.eos_token_id}
    found.update({k: v for k, v in decoder.generation_config.items() if k in KEYS and v is not None})
    ids = {k: [t for t in (v if isinstance(v, list) else [v]) if 0 <= t < vocab]
           for k, v in found.items() if v is not None}
    eos = tuple(ids.get("eos_token_id", ()))
    bos = ids.get("bos_token_id", [])
    pad = ids.get("pad_token_id", []) or list(eos) or [0]
    return SpecialIds(bos=bos[0] if bos else None, eos=eos, pad=pad[0])
