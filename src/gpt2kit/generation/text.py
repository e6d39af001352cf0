"""Text in, text out: `complete` for whole completions, `stream` for pieces as they come."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gpt2kit.errors import GenerationError
from gpt2kit.generation.decode import Sampler, check_prompts, generate_all, make_generator
from gpt2kit.generation.settings import GenerationSettings, settings_from
from gpt2kit.generation.special_ids import special_ids
from gpt2kit.generation.stopping import cut_at_stop
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.tokenizer import Tokenizer


@dataclass
class Completion:
    prompt: str
    text: str  # generated text, without end-of-text and cut before any stop string
    token_ids: list[int]  # generated ids, including the one that stopped generation
    finish_reason: str  # "stop_token", "stop_string" or "length"


def encode_prompt(tokenizer: Tokenizer, prompt: str, bos: int | None = None) -> list[int]:
    """Ids of a prompt; an empty prompt means an unconditional sample, which starts from the
    model's bos id (<|endoftext|> for GPT-2)."""
    if prompt:
        return tokenizer.encode(prompt)
    return [tokenizer.eot_id if bos is None else bos]


def _text(tokenizer: Tokenizer, ids: list[int], reason: str, settings: GenerationSettings) -> str:
    if reason == "stop_token":
        ids = ids[:-1]
    text = tokenizer.decode(ids)
    return cut_at_stop(text, settings.stop) if reason == "stop_string" else text


def complete(model: GPT2, tokenizer: Tokenizer, prompts: str | Sequence[str], **settings: Any) -> list[Completion]:
    """Completions of each prompt (num_samples, or num_return_sequences with beams, each), prompt-major."""
    config = settings_from(settings)
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts:
        raise GenerationError("no prompts given")
    bos = special_ids(model).bos
    ids = [encode_prompt(tokenizer, t, bos) for t in texts]
    return [
        Completion(texts[g.prompt_index], _text(tokenizer, g.token_ids, g.finish_reason, config), g.token_ids,
                   g.finish_reason)
        for g in generate_all(model, ids, config, tokenizer.token_bytes)
    ]


def stream(model: GPT2, tokenizer: Tokenizer, prompt: str, **settings: Any) -> Iterator[str]:
    """Pieces of one completion as soon as they are whole UTF-8 text (and cannot be the start
    of a stop string). Joined, they equal `complete(...)[0].text`. Settings and prompt are
    checked by this call, before the first piece is asked for, so a caller can show the
    prompt knowing that generation will start."""
    config = settings_from(settings)
    if config.num_beams > 1 or config.num_samples > 1:
        raise GenerationError("streaming produces one sample: use num_samples=1 and num_beams=1")
    model_ids = special_ids(model)
    config = config.for_model(model_ids)
    ids = encode_prompt(tokenizer, prompt, model_ids.bos)
    check_prompts([ids], model, config)
    generator = None if config.greedy else make_generator(config, model.device)
    return _pieces(Sampler(model, [ids], config, generator, tokenizer.token_bytes), tokenizer, config)


def _pieces(sampler: Sampler, tokenizer: Tokenizer, config: GenerationSettings) -> Iterator[str]:
    decoder = tokenizer.incremental_decoder()
    pending = ""  # text that might still turn out to be a stop string
    for (token,) in sampler:
        reason = sampler.reasons[0]
        if token is None or reason == "stop_token":
            break
        pending += decoder.add(token)
        if reason == "stop_string":
            yield cut_at_stop(pending, config.stop)
            return
        safe = len(pending) - _held_back(pending, config.stop)
        if safe > 0:
            yield pending[:safe]
            pending = pending[safe:]
    pending += decoder.flush()
    if pending:
        yield pending


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that begins some stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best
