"""Text in, text out: `complete` for whole completions (streamed pieces are in events.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpt2kit.backends.decoder import Decoder
from gpt2kit.errors import GenerationError
from gpt2kit.generation.decode import Generation, check_prompts, generate_all
from gpt2kit.generation.settings import GenerationSettings, settings_from
from gpt2kit.generation.special_ids import special_ids
from gpt2kit.generation.stopping import cut_at_stop
from gpt2kit.tokenizer import Tokenizer


@dataclass
class Completion:
    prompt: str
    text: str  # generated text, without end-of-text and cut before any stop string
    token_ids: list[int]  # generated ids, including the one that stopped generation
    finish_reason: str  # "stop_token", "stop_string" or "length"
    logprobs: list[float]  # of each token id under the model's own distribution (logprobs.py)
    top_logprobs: list[dict[int, float]] | None  # per token id, the settings.logprobs likeliest; None unless asked
    prompt_tokens: int  # tokens the model was given (1 for an unconditional sample: its bos id)
    completion_tokens: int  # len(token_ids)


def encode_prompt(tokenizer: Tokenizer, prompt: str, bos: int | None = None) -> list[int]:
    """Ids of a prompt; an empty prompt means an unconditional sample, which starts from the
    model's bos id (<|endoftext|> for GPT-2)."""
    if prompt:
        return tokenizer.encode(prompt)
    return [tokenizer.eot_id if bos is None else bos]


def prepare(model: Decoder, tokenizer: Tokenizer, prompts: str | Sequence[str], config: GenerationSettings
            ) -> tuple[list[str], list[list[int]], GenerationSettings]:
    """Prompt texts, their ids and the settings bound to the model's special ids, all checked
    before any work is done."""
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts:
        raise GenerationError("no prompts given")
    model_ids = special_ids(model)
    config = config.for_model(model_ids)
    ids = [encode_prompt(tokenizer, t, model_ids.bos) for t in texts]
    check_prompts(ids, model, config)
    return texts, ids, config


def completion_text(tokenizer: Tokenizer, ids: list[int], reason: str, settings: GenerationSettings) -> str:
    if reason == "stop_token":
        ids = ids[:-1]
    text = tokenizer.decode(ids)
    return cut_at_stop(text, settings.stop) if reason == "stop_string" else text


def complete(model: Decoder, tokenizer: Tokenizer, prompts: str | Sequence[str],
             **settings: Any) -> list[Completion]:
    """Completions of each prompt (num_samples, or num_return_sequences with beams, each), prompt-major."""
    texts, ids, config = prepare(model, tokenizer, prompts, settings_from(settings))
    generations = generate_all(model, ids, config, tokenizer.token_bytes)
    if config.num_beams > 1 and config.logprobs is not None:  # one more forward pass: only when asked
        score_beams(model, ids, generations, config)
    return [
        Completion(texts[g.prompt_index], completion_text(tokenizer, g.token_ids, g.finish_reason, config),
                   g.token_ids, g.finish_reason, g.logprobs, g.top_logprobs, len(ids[g.prompt_index]),
                   len(g.token_ids))
        for g in generations
    ]


def score_beams(model: Decoder, prompts: list[list[int]], generations: list[Generation],
                 settings: GenerationSettings) -> None:
    """Beam search ranks by processed, summed scores; each result's own log-probabilities come
    from scoring the final sequence, as for any other text."""
    from gpt2kit.evaluation.scoring import score

    sequences = [prompts[g.prompt_index] + g.token_ids for g in generations]
    scored = score(model, sequences, top_logprobs=settings.logprobs or 0)
    for g, s in zip(generations, scored, strict=True):
        start = len(prompts[g.prompt_index])  # >= 1, so no generated token is the unscored first one
        g.logprobs = s.logprobs[start:]
        g.top_logprobs = s.top_logprobs[start:] if s.top_logprobs is not None else None
