"""Decoding: prompts -> generated token ids.

`DecodeLoop` is the loop for greedy decoding and sampling: a generator that yields each
step's token per row (with its log-probability) as it is produced, which is what streaming
and servers consume.
`generate_all` splits the work into batches of `batch_size` rows and hands beam search
to `beam.py`. Rows are prompt-major: prompt i, sample j is row i * num_samples + j.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gpt2kit.backends.decoder import Decoder
from gpt2kit.devices import torch_threads
from gpt2kit.errors import GenerationError
from gpt2kit.generation import logits as logits_steps
from gpt2kit.generation.batch import Batch
from gpt2kit.generation.logprobs import as_dicts, token_logprobs
from gpt2kit.generation.sampling import CHOOSERS, greedy
from gpt2kit.generation.settings import GenerationSettings, settings_from
from gpt2kit.generation.special_ids import special_ids
from gpt2kit.generation.stopping import StopCriteria

Prompts = Sequence[int] | Sequence[Sequence[int]] | torch.Tensor


@dataclass
class Generation:
    prompt_index: int
    token_ids: list[int]
    finish_reason: str  # "stop_token", "stop_string" or "length"
    logprobs: list[float] | None = None  # one per token id; None from beam search or when not kept
    top_logprobs: list[dict[int, float]] | None = None  # per token, when settings.logprobs > 0


def as_prompts(input_ids: Prompts) -> list[list[int]]:
    """One prompt or a batch of them, as lists of ids."""
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() not in (1, 2):
            raise GenerationError(f"input_ids must have shape (T,) or (B, T), got {tuple(input_ids.shape)}")
        return [input_ids.tolist()] if input_ids.dim() == 1 else input_ids.tolist()
    items = list(input_ids)
    if items and all(isinstance(i, Sequence) or isinstance(i, torch.Tensor) for i in items):
        return [[int(t) for t in row] for row in items]
    return [[int(t) for t in items]]


def check_prompts(prompts: list[list[int]], model: Decoder, settings: GenerationSettings) -> None:
    vocab, ctx = model.config.vocab_size, model.config.n_positions
    if not prompts:
        raise GenerationError("no prompts given")
    for i, ids in enumerate(prompts):
        where = f"prompt {i + 1}" if len(prompts) > 1 else "the prompt"
        if not ids:
            raise GenerationError(f"{where} is empty: give at least one token "
                                  "(unconditional samples start from <|endoftext|>)")
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise GenerationError(f"{where}: token id {bad} is outside the vocabulary (0..{vocab - 1})")
        if len(ids) >= ctx:
            raise GenerationError(f"{where} has {len(ids)} tokens; the model's context of {ctx} leaves no room "
                                  "to generate")
        if settings.max_length is not None and len(ids) >= settings.max_length:
            raise GenerationError(f"{where} has {len(ids)} tokens; max-length {settings.max_length} leaves no "
                                  "room to generate")
    for name in ("bad_token_ids", "stop_token_ids", "eos_token_id", "pad_token_id"):
        value = getattr(settings, name)
        bad = next((t for t in (value if isinstance(value, tuple) else (value,))
                    if t is not None and not 0 <= t < vocab), None)
        if bad is not None:
            raise GenerationError(f"{name.replace('_', '-')}: token id {bad} is outside the vocabulary "
                                  f"(0..{vocab - 1})")
    if settings.num_beams > 1 and max(len(p) for p in prompts) + max(
            settings.new_tokens_for(len(p)) for p in prompts) > ctx:
        raise GenerationError(f"beam search cannot go past the model's context of {ctx} tokens; "
                              "lower max-new-tokens")


def make_generator(settings: GenerationSettings, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if settings.seed is not None:
        generator.manual_seed(settings.seed)
    else:
        generator.seed()
    return generator


@dataclass
class Token:
    id: int
    logprob: float | None  # log-softmax of the model's raw logits (see logprobs.py); None when not kept
    top_logprobs: dict[int, float] | None  # the settings.logprobs most likely ids, when asked for


class Chooser:
    """Each step's next token for rows decoded with the same settings: the logits steps, the
    sampler (or the argmax), log-probabilities, and the stop check. Rows that have stopped get
    the padding id and None. `DecodeLoop` runs one for its batch; a server runs one per request
    among the rows of other requests. With `logprobs` False, log-probabilities are computed only
    when settings.logprobs asks for them (a logsumexp over the vocabulary per row and step, which
    callers that keep only the ids, such as `generate`, skip)."""

    def __init__(self, settings: GenerationSettings, budgets: list[int], prompt_width: int,
                 generator: torch.Generator | None, token_bytes: Callable[[int], bytes] | None,
                 logprobs: bool = True) -> None:
        self.settings, self.generator = settings, generator
        self.logprobs = logprobs or settings.logprobs is not None
        self.steps = logits_steps.pipeline(settings, prompt_width)
        self.choose = CHOOSERS[settings.sampler]
        self.stops = StopCriteria(settings, budgets, token_bytes)
        self.reasons: list[str | None] = [None] * len(budgets)
        self.generated = 0  # steps taken

    @property
    def finished(self) -> bool:
        return all(r is not None for r in self.reasons)

    def __call__(self, ids: torch.Tensor | None, logits: torch.Tensor) -> tuple[torch.Tensor, list[Token | None]]:
        """ids (B, length) so far (padding marked with vocab_size; only read by logits steps) and
        logits (B, V) of the next position -> the tokens (B,) to feed back, and each row's Token."""
        settings = self.settings
        self.generated += 1
        scores = logits_steps.apply(self.steps, ids if self.steps else None, logits)
        nxt = greedy(scores) if settings.greedy else self.choose(scores, self.generator)
        done = [r is not None for r in self.reasons]
        if any(done):
            nxt = nxt.masked_fill(torch.tensor(done, device=nxt.device), settings.pad_token_id)
        if self.logprobs:
            chosen, top_values, top_ids = token_logprobs(logits, nxt, settings.logprobs or 0)
            values, tops = chosen.tolist(), (as_dicts(top_values, top_ids) if top_values is not None
                                             else [None] * len(done))
        else:
            values = tops = [None] * len(done)
        out: list[Token | None] = []
        for row, (token, logprob) in enumerate(zip(nxt.tolist(), values, strict=True)):
            if done[row]:
                out.append(None)
                continue
            out.append(Token(token, logprob, tops[row]))
            self.reasons[row] = self.stops.check(row, token, self.generated)
        return nxt, out


class DecodeLoop:
    """Greedy decoding or sampling for a batch of rows. Iterating yields, per step, each
    row's new Token (None for rows that have stopped); `reasons` says why each stopped."""

    def __init__(self, model: Decoder, rows: list[list[int]], settings: GenerationSettings,
                 generator: torch.Generator | None, token_bytes: Callable[[int], bytes] | None,
                 logprobs: bool = True) -> None:
        self.model, self.rows, self.settings, self.logprobs = model, rows, settings, logprobs
        self.budgets = [settings.new_tokens_for(len(r)) for r in rows]
        self.generator = generator
        self.token_bytes = token_bytes
        self.reasons: list[str | None] = [None] * len(rows)

    def __iter__(self) -> Iterator[list[Token | None]]:
        n_new = max(self.budgets)
        if n_new == 0:
            self.reasons = ["length"] * len(self.rows)
            return
        batch = Batch(self.model, self.rows, n_new, self.settings.pad_token_id)
        chooser = Chooser(self.settings, self.budgets, batch.width, self.generator, self.token_bytes, self.logprobs)
        self.reasons = chooser.reasons
        logits = batch.prefill()
        while True:
            with torch_threads(self.model):
                nxt, out = chooser(batch.ids(), logits)
            yield out
            if chooser.finished:
                return
            logits = batch.append(nxt)


def decode_loops(model: Decoder, prompts: list[list[int]], settings: GenerationSettings,
                 generator: torch.Generator | None, token_bytes: Callable[[int], bytes] | None,
                 logprobs: bool = True) -> Iterator[tuple[int, DecodeLoop]]:
    """The rows (prompt i, sample j at row i * num_samples + j) in loops of `batch_size` rows,
    each with the number of its first row. Loops are made as they are reached, so that they
    draw from `generator` in row order."""
    rows = [p for p in prompts for _ in range(settings.num_samples)]
    per_batch = settings.batch_size or len(rows)
    for start in range(0, len(rows), per_batch):
        yield start, DecodeLoop(model, rows[start:start + per_batch], settings, generator, token_bytes, logprobs)


def generate_all(model: Decoder, prompts: list[list[int]], settings: GenerationSettings,
                 token_bytes: Callable[[int], bytes] | None = None, logprobs: bool = True) -> list[Generation]:
    """Every generation for every prompt, prompt-major. Beam results carry no log-probabilities
    (the search ranks by processed scores): `complete` scores them. `logprobs` False: none are
    computed unless settings.logprobs asks for them."""
    with torch_threads(model):
        return _generate_all(model, prompts, settings.for_model(special_ids(model)), token_bytes, logprobs)


def _generate_all(model: Decoder, prompts: list[list[int]], settings: GenerationSettings,
                  token_bytes: Callable[[int], bytes] | None, logprobs: bool) -> list[Generation]:
    from gpt2kit.generation.beam import beam_search

    check_prompts(prompts, model, settings)
    generator = None if settings.greedy else make_generator(settings, model.device)
    results: list[Generation] = []
    if settings.num_beams > 1:
        per_batch = max(1, (settings.batch_size or len(prompts) * settings.num_beams) // settings.num_beams)
        for start in range(0, len(prompts), per_batch):
            chunk = prompts[start:start + per_batch]
            for i, beams in enumerate(beam_search(model, chunk, settings, generator)):
                results += [Generation(start + i, ids, reason) for ids, reason in beams]
        return results
    for start, loop in decode_loops(model, prompts, settings, generator, token_bytes, logprobs):
        tokens: list[list[Token]] = [[] for _ in loop.rows]
        for step in loop:
            for row, token in enumerate(step):
                if token is not None:
                    tokens[row].append(token)
        for row, (row_tokens, reason) in enumerate(zip(tokens, loop.reasons, strict=True)):
            top = [t.top_logprobs for t in row_tokens] if settings.logprobs else None
            kept = [t.logprob for t in row_tokens] if logprobs or settings.logprobs is not None else None
            results.append(Generation((start + row) // settings.num_samples, [t.id for t in row_tokens],
                                      reason or "length", kept, top))
    return results


def generate(model: Decoder, input_ids: Prompts, *, tokenizer: Any = None, **settings: Any) -> list[list[int]]:
    """Generated token ids (prompt excluded) for each sample of each prompt, prompt-major.

    `input_ids`: one prompt (list of ids, or a 1-D tensor) or several (list of lists, or a
    2-D tensor). A generation that stopped on a stop token ends with it. `tokenizer` is needed
    only for stop strings (default: GPT-2's). Settings: see GenerationSettings; end-of-text and
    padding default to the model's own ids, and tokens are sampled unless temperature=0,
    do_sample=False or beam search (num_beams > 1, deterministic unless do_sample=True).
    """
    config = settings_from(settings)
    prompts = as_prompts(input_ids)
    token_bytes = None
    if config.stop:
        from gpt2kit.tokenizer import Tokenizer

        token_bytes = (tokenizer or Tokenizer.from_pretrained()).token_bytes
    return [g.token_ids for g in generate_all(model, prompts, config, token_bytes, logprobs=False)]
