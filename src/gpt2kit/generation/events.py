"""Streaming: completions as events, one per generated token, as soon as each is produced.

An event carries the token, its log-probability (and alternatives when settings.logprobs
asks), and the text it completes. That text may be "" while it is held back: an incomplete
UTF-8 character, or the start of what may become a stop string. Joined, a completion's
texts equal `complete(...)`'s text and its token ids equal complete's token_ids; the last
event of a completion says why it ended and how many tokens it used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gpt2kit.backends.decoder import Decoder
from gpt2kit.errors import GenerationError
from gpt2kit.generation.decode import decode_loops, make_generator
from gpt2kit.generation.settings import GenerationSettings, settings_from
from gpt2kit.generation.stopping import cut_at_stop
from gpt2kit.generation.text import prepare
from gpt2kit.tokenizer import Tokenizer


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int  # including a stop token that ended the completion


@dataclass
class StreamEvent:
    index: int  # which completion: prompt i, sample j is i * num_samples + j, as in complete()
    text: str  # "" while held back
    token_ids: list[int]  # the step's token; [] only for a completion of no tokens (max_new_tokens=0)
    logprobs: list[float]  # one per token id
    top_logprobs: list[dict[int, float]] | None  # one per token id when settings.logprobs > 0
    finish_reason: str | None = None  # on the last event of a completion
    usage: Usage | None = None  # on the last event of a completion


class TextPieces:
    """One completion's text as its tokens arrive: whole characters, held back while they may
    begin a stop string."""

    def __init__(self, tokenizer: Tokenizer, stops: tuple[str, ...]) -> None:
        self.decoder = tokenizer.incremental_decoder()
        self.stops = stops
        self.pending = ""  # text that might still turn out to be a stop string

    def add(self, token: int, reason: str | None) -> str:
        """Text that `token` releases; `reason` is why the completion ends with it, if it does."""
        if reason == "stop_token":  # the stop token's own text is not part of the completion
            return self.finish()
        self.pending += self.decoder.add(token)
        if reason == "stop_string":
            text, self.pending = cut_at_stop(self.pending, self.stops), ""
            return text
        if reason is not None:
            return self.finish()
        safe = len(self.pending) - _held_back(self.pending, self.stops)
        text, self.pending = self.pending[:safe], self.pending[safe:]
        return text

    def finish(self) -> str:
        text, self.pending = self.pending + self.decoder.flush(), ""
        return text


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that begins some stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


def stream(model: Decoder, tokenizer: Tokenizer, prompt: str, **settings: Any) -> Iterator[StreamEvent]:
    """Events of one completion. Settings and prompt are checked by this call, before the first
    event is asked for, so a caller can show the prompt knowing that generation will start."""
    config = settings_from(settings)
    if config.num_beams > 1 or config.num_samples > 1:
        raise GenerationError("streaming produces one sample: use num_samples=1 and num_beams=1")
    _, ids, config = prepare(model, tokenizer, [prompt], config)
    return _events(model, tokenizer, ids, config)


def stream_batch(model: Decoder, tokenizer: Tokenizer, prompts: str | Sequence[str],
                 **settings: Any) -> Iterator[StreamEvent]:
    """Events of every completion of every prompt (num_samples each), step by step: each step's
    events for all rows of a batch, in row order. Checked before the first event, as `stream`."""
    config = settings_from(settings)
    if config.num_beams > 1:
        raise GenerationError("beam search chooses its results only at the end, so it cannot stream: "
                              "use complete() or num_beams=1")
    _, ids, config = prepare(model, tokenizer, prompts, config)
    return _events(model, tokenizer, ids, config)


def _events(model: Decoder, tokenizer: Tokenizer, prompts: list[list[int]],
            config: GenerationSettings) -> Iterator[StreamEvent]:
    generator = None if config.greedy else make_generator(config, model.device)
    for start, loop in decode_loops(model, prompts, config, generator, tokenizer.token_bytes):
        pieces = [TextPieces(tokenizer, config.stop) for _ in loop.rows]
        counts = [0] * len(loop.rows)
        for step in loop:
            for row, token in enumerate(step):
                if token is None:
                    continue
                counts[row] += 1
                reason = loop.reasons[row]
                top = [token.top_logprobs] if token.top_logprobs is not None else None
                yield StreamEvent(start + row, pieces[row].add(token.id, reason), [token.id], [token.logprob], top,
                                  reason, Usage(len(loop.rows[row]), counts[row]) if reason else None)
        for row, count in enumerate(counts):  # completions of no tokens still end with an event
            if count == 0:
                yield StreamEvent(start + row, "", [], [], [] if config.logprobs else None,
                                  loop.reasons[row] or "length", Usage(len(loop.rows[row]), 0))
