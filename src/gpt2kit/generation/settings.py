"""Generation settings, validated before any work is done."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from gpt2kit.errors import GenerationError
from gpt2kit.generation.logprobs import MAX_TOP
from gpt2kit.generation.sampling import CHOOSERS

if TYPE_CHECKING:
    from gpt2kit.generation.special_ids import SpecialIds

SAMPLERS = tuple(CHOOSERS)
FROM_MODEL = "model"  # eos_token_id default: the model's own (generation_config.json, else config.json)
# options that shape the sampling distribution, with the value that turns each off
SAMPLING_ONLY = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "typical_p": 1.0, "min_p": 0.0,
                 "sampler": "multinomial"}


@dataclass
class GenerationSettings:
    # ---- length --------------------------------------------------------------------------------
    max_new_tokens: int | None = 64  # None: decided by max_length
    max_length: int | None = None  # prompt + generated tokens (Texar's max_decoding_length); the smaller wins
    min_new_tokens: int = 0  # end-of-text and stop tokens are banned until this many are generated
    # ---- choice of the next token --------------------------------------------------------------
    do_sample: bool | None = None  # None: sample unless temperature is 0 or beam search runs
    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0 disables
    top_p: float = 1.0  # 1 disables
    typical_p: float = 1.0  # 1 disables
    min_p: float = 0.0  # 0 disables
    sampler: str = "multinomial"  # or "gumbel": the Gumbel-max trick, same distribution
    # ---- penalties and bans ----------------------------------------------------------------------
    repetition_penalty: float = 1.0  # CTRL's penalty on every token already in the sequence; 1 disables
    frequency_penalty: float = 0.0  # subtracted once per earlier occurrence of a generated token
    presence_penalty: float = 0.0  # subtracted once if a token was generated before
    no_repeat_ngram_size: int = 0  # no n-gram of this size appears twice; 0 disables
    bad_token_ids: Sequence[int] = ()  # never generated
    logits_hooks: Sequence[Callable] = ()  # user steps (ids, logits) -> logits, run after the bans
    # ---- beam search -----------------------------------------------------------------------------
    num_beams: int = 1
    length_penalty: float = 1.0  # beam score = sum of log-probs / length ** length_penalty
    early_stopping: bool | str = False  # True, False or "never", as in transformers
    num_return_sequences: int = 1  # best beams returned per prompt
    # ---- stopping --------------------------------------------------------------------------------
    eos_token_id: int | str | None = FROM_MODEL  # "model": the model's own; None: never stop on end-of-text
    stop_token_ids: Sequence[int] = ()
    stop: Sequence[str] = ()  # stop strings, found across token boundaries and cut from the text
    # ---- batching and randomness -----------------------------------------------------------------
    num_samples: int = 1  # samples per prompt (sampling and greedy decoding)
    batch_size: int | None = None  # rows per forward pass; None: all at once
    seed: int | None = None
    pad_token_id: int | None = None  # None: the model's pad id, else its eos id, else 0 (padding is masked)
    # ---- what is reported ------------------------------------------------------------------------
    # None: token log-probabilities are still computed (they are cheap) but not asked for in records;
    # N: records carry them, with the N most likely alternatives of each token (0..20)
    logprobs: int | None = None

    def __post_init__(self) -> None:
        def integer(name: str, minimum: int, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise GenerationError(f"{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")

        integer("max_new_tokens", 0, allow_none=True)
        integer("max_length", 1, allow_none=True)
        integer("min_new_tokens", 0)
        integer("top_k", 0)
        integer("no_repeat_ngram_size", 0)
        integer("num_beams", 1)
        integer("num_return_sequences", 1)
        integer("num_samples", 1)
        integer("batch_size", 1, allow_none=True)
        integer("pad_token_id", 0, allow_none=True)
        integer("logprobs", 0, allow_none=True)
        if self.logprobs is not None and self.logprobs > MAX_TOP:
            raise GenerationError(f"logprobs must be at most {MAX_TOP} (alternatives per token), got {self.logprobs}")
        if self.eos_token_id != FROM_MODEL:
            integer("eos_token_id", 0, allow_none=True)
        if self.do_sample not in (None, True, False):
            raise GenerationError(f"do-sample must be true or false, got {self.do_sample!r}")
        for name in ("temperature", "top_p", "typical_p", "min_p", "repetition_penalty", "frequency_penalty",
                     "presence_penalty", "length_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise GenerationError(f"{name.replace('_', '-')} must be a finite number, got {getattr(self, name)}")
        if self.max_new_tokens is None and self.max_length is None:
            raise GenerationError("give max-new-tokens or max-length")
        if self.temperature < 0:
            raise GenerationError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        for name in ("top_p", "typical_p"):
            if not 0 < getattr(self, name) <= 1:
                raise GenerationError(f"{name.replace('_', '-')} must be in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.min_p < 1:
            raise GenerationError(f"min-p must be in [0, 1), got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise GenerationError(f"repetition-penalty must be > 0 (1 disables it), got {self.repetition_penalty}")
        if self.sampler not in SAMPLERS:
            raise GenerationError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.do_sample and self.temperature == 0:
            raise GenerationError("temperature 0 means greedy decoding; sampling (do-sample) needs a temperature > 0")
        unused = next((name for name, off in SAMPLING_ONLY.items() if getattr(self, name) != off), None)
        if unused is not None and not self.sampling and self.temperature != 0:
            what = "beam search is deterministic" if self.num_beams > 1 else "do-sample is off"
            raise GenerationError(f"{unused.replace('_', '-')} applies to sampling, and {what}: "
                                  "turn on do-sample to sample" + (" the beams" if self.num_beams > 1 else ""))
        if self.early_stopping not in (True, False, "never"):
            raise GenerationError(f"early-stopping must be true, false or 'never', got {self.early_stopping!r}")
        if self.num_return_sequences > self.num_beams:
            raise GenerationError(f"num-return-sequences ({self.num_return_sequences}) cannot exceed "
                                  f"num-beams ({self.num_beams})")
        if self.num_beams > 1 and self.num_samples > 1:
            raise GenerationError("num-samples applies to sampling; with beam search use num-return-sequences")
        if self.num_beams > 1 and self.stop:
            raise GenerationError("stop strings work with sampling and greedy decoding, not with beam search")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise GenerationError("stop strings must be non-empty text")
        self.stop = tuple(self.stop)
        self.stop_token_ids = tuple(int(t) for t in self.stop_token_ids)
        self.bad_token_ids = tuple(int(t) for t in self.bad_token_ids)
        self.logits_hooks = tuple(self.logits_hooks)
        if any(not callable(h) for h in self.logits_hooks):
            raise GenerationError("logits hooks must be callables (ids, logits) -> logits")

    @property
    def sampling(self) -> bool:
        """Whether tokens are drawn at random: by default only without beams and at a temperature > 0,
        as transformers' beam search is deterministic unless sampling is asked for."""
        if self.do_sample is not None:
            return self.do_sample
        return self.num_beams == 1 and self.temperature > 0

    @property
    def greedy(self) -> bool:
        """Deterministic: greedy decoding, or beam search that takes the best candidates."""
        return not self.sampling

    def for_model(self, ids: SpecialIds) -> GenerationSettings:
        """These settings with the model's own end-of-text and padding ids where none were given;
        an eos list from generation_config.json adds its other ids to the stop tokens."""
        eos, extra = self.eos_token_id, ()
        if eos == FROM_MODEL:
            eos, extra = (ids.eos[0], ids.eos[1:]) if ids.eos else (None, ())
        pad = ids.pad if self.pad_token_id is None else self.pad_token_id
        return dataclasses.replace(self, eos_token_id=eos, pad_token_id=pad,
                                   stop_token_ids=(*self.stop_token_ids, *extra))

    def new_tokens_for(self, prompt_length: int) -> int:
        """Tokens to generate after a prompt of this length (max_length counts the prompt)."""
        limits = [n for n in (self.max_new_tokens,) if n is not None]
        if self.max_length is not None:
            limits.append(self.max_length - prompt_length)
        return max(0, min(limits))

    def stop_ids(self) -> set[int]:
        if self.eos_token_id == FROM_MODEL:
            raise ValueError("settings not yet bound to a model: call for_model() first")
        ids = set(self.stop_token_ids)
        if self.eos_token_id is not None:
            ids.add(self.eos_token_id)
        return ids

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-friendly values (hooks are named, not serialised)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "logits_hooks":
                value = [getattr(h, "__name__", repr(h)) for h in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def settings_from(kwargs: dict[str, Any]) -> GenerationSettings:
    """GenerationSettings from keyword arguments, refusing unknown names with one line."""
    known = {f.name for f in fields(GenerationSettings)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise GenerationError(f"unknown generation setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return GenerationSettings(**kwargs)
