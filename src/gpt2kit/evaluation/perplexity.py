"""Perplexity: exp of the mean negative log-likelihood of a text's tokens, each given the ones before it.

The log-probabilities come from `score`: windows of the model's context, `stride` tokens apart
(default half a context), each token scored once with up to a full window before it (the
strided method of transformers' perplexity guide). The first token of a text has nothing before
it and is not counted. Bits per byte divide the same total by the UTF-8 bytes of the counted
tokens, a measure that does not depend on the tokenizer.

`perplexity_of_data` reads any data `gpt2kit finetune` reads (text files, folders, .jsonl/.csv
text columns, token files), through the same token cache: documents joined by <|endoftext|>,
scored as one stream, as training sees them.
`heldout_text()` is the end of the King James Bible that the shipped model never trained on (its
validation split: the last 2% of the tokens, 20,491 tokens), for checks such as int8 against fp32.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from importlib import resources

from gpt2kit.backends.decoder import Decoder
from gpt2kit.evaluation.scoring import ScoringError, score

HELDOUT_NAME = "the King James Bible's held-out end (the shipped model's validation split)"


@dataclass(frozen=True)
class Perplexity:
    tokens: int  # tokens counted (all but the first, and with stride = context each window's first)
    nll: float  # mean negative log-likelihood, nats per token
    bytes: int = 0  # UTF-8 bytes of the counted tokens (<|endoftext|> counts none); 0 when not known

    @property
    def value(self) -> float:
        return math.exp(self.nll)

    @property
    def bits_per_byte(self) -> float | None:
        return self.nll * self.tokens / math.log(2) / self.bytes if self.bytes else None

    def to_dict(self) -> dict:
        return {"perplexity": self.value, "mean_loss": self.nll, "bits_per_byte": self.bits_per_byte, **asdict(self)}


def perplexity(model: Decoder, text_or_ids: str | list[int], *, tokenizer=None, max_tokens: int | None = None,
               batch_size: int = 4, stride: int | None = None, progress: bool = False) -> Perplexity:
    """Perplexity of `model` on one text (or its ids), its first `max_tokens` tokens when given.
    Bits per byte are known when a tokenizer is given."""
    if tokenizer is None and isinstance(text_or_ids, str):
        raise ScoringError("perplexity of a text needs its tokenizer (or pass token ids)")
    ids = tokenizer.encode(text_or_ids) if isinstance(text_or_ids, str) else [int(i) for i in text_or_ids]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if len(ids) < 2:
        raise ScoringError(f"perplexity needs at least 2 tokens, got {len(ids)}")
    scored = score(model, [ids], batch_size=batch_size, stride=stride, progress=progress)[0].logprobs
    counted = [(t, lp) for t, lp in zip(ids, scored, strict=True) if lp is not None]
    size = 0
    if tokenizer is not None:
        size = sum(len(tokenizer.token_bytes(t)) for t, _ in counted if t != tokenizer.eot_id)
    return Perplexity(tokens=len(counted), nll=-math.fsum(lp for _, lp in counted) / len(counted), bytes=size)


def perplexity_of_data(model: Decoder, tokenizer, path: str | os.PathLike, *, max_tokens: int | None = None,
                       stride: int | None = None, batch_size: int = 4, text_column: str = "text",
                       errors: str = "strict", cache_dir: str | os.PathLike | None = None,
                       progress: bool = True) -> Perplexity:
    """Perplexity of `model` on the data at `path`, read as `gpt2kit finetune` reads it."""
    from gpt2kit.data.dataset import tokenize_to_cache
    from gpt2kit.data.tokens import open_tokens

    if max_tokens is not None and max_tokens < 2:
        raise ScoringError(f"--max-tokens must be at least 2, got {max_tokens}")
    tokens = open_tokens(tokenize_to_cache(path, tokenizer, cache_dir=cache_dir, text_column=text_column,
                                           errors=errors, progress=progress))
    ids = tokens[:max_tokens].tolist()
    if len(ids) and max(ids) >= model.config.vocab_size:
        raise ScoringError(f"{path}: token id {max(ids)} is outside the model's vocabulary "
                           f"(0..{model.config.vocab_size - 1})")
    return perplexity(model, ids, tokenizer=tokenizer, batch_size=batch_size, stride=stride, progress=progress)


def heldout_text() -> str:
    return resources.files("gpt2kit.evaluation").joinpath("data/kjv-heldout.txt").read_text(encoding="utf-8")
