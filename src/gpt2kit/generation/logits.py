"""Logits steps: small functions (ids, logits) -> logits, each returning a new tensor.

`ids` (B, T) holds every token so far; left padding in a batch is marked with the id
V = logits.shape[-1] (one past the vocabulary), so penalties never count padding.
`logits` (B, V) scores the next token. `pipeline` lists the steps in the order they
run, which is transformers' order:

    repetition penalty -> frequency/presence penalties -> no-repeat n-grams -> banned tokens
    -> min-new-tokens -> user hooks -> [sampling only] temperature -> top-k -> top-p -> min-p -> typical-p
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from gpt2kit.generation.sampling import candidates
from gpt2kit.generation.settings import GenerationSettings

LogitsStep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NEG_INF = float("-inf")


def _seen(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, V) bool: which tokens occur in each row (the padding id V falls off the end)."""
    seen = torch.zeros(ids.shape[0], vocab + 1, dtype=torch.bool, device=ids.device)
    return seen.scatter_(1, ids, True)[:, :vocab]


def _counts(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    counts = torch.zeros(ids.shape[0], vocab + 1, dtype=torch.float32, device=ids.device)
    return counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=torch.float32))[:, :vocab]


# ---- penalties and bans -----------------------------------------------------------------------


def repetition_penalty(penalty: float) -> LogitsStep:
    """CTRL's penalty: a token already in the sequence has its positive logit divided by
    `penalty` and its negative logit multiplied by it."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        # the row's tokens only (gather/scatter, not the whole vocabulary); padding (id V) stands in
        # for the row's last token, which is real and penalised anyway
        ids = ids.where(ids < logits.shape[-1], ids[:, -1:])
        seen = logits.gather(-1, ids)
        return logits.scatter(-1, ids, torch.where(seen < 0, seen * penalty, seen / penalty))

    return step


def frequency_presence_penalty(frequency: float, presence: float, prompt_width: int) -> LogitsStep:
    """OpenAI-style penalties on generated tokens: frequency x count + presence x (count > 0)."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        counts = _counts(ids[:, prompt_width:], logits.shape[-1]).to(logits.dtype)
        return logits - frequency * counts - presence * (counts > 0).to(logits.dtype)

    return step


def no_repeat_ngram(n: int) -> LogitsStep:
    """Ban every token that would complete an n-gram already present in the row."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] < n:
            return logits
        if n == 1:
            return logits.masked_fill(_seen(ids, logits.shape[-1]), NEG_INF)
        windows = ids.unfold(1, n, 1)  # (B, T - n + 1, n): every n-gram so far
        prefix = ids[:, -(n - 1):]  # (B, n - 1): what the next token would extend
        match = (windows[:, :, :-1] == prefix[:, None, :]).all(-1)  # (B, T - n + 1)
        rows, cols = match.nonzero(as_tuple=True)
        banned = torch.zeros_like(logits, dtype=torch.bool)
        banned[rows, windows[rows, cols, -1]] = True
        return logits.masked_fill(banned, NEG_INF)

    return step


def ban_tokens(token_ids: Sequence[int]) -> LogitsStep:
    index = torch.tensor(list(token_ids), dtype=torch.long)

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        out = logits.clone()
        out[:, index[index < logits.shape[-1]].to(logits.device)] = NEG_INF  # ids past a small vocabulary
        return out

    return step


def min_new_tokens(minimum: int, prompt_width: int, stop_ids: Sequence[int]) -> LogitsStep:
    """Ban the stopping tokens until `minimum` tokens have been generated."""
    ban = ban_tokens(stop_ids)

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return ban(ids, logits) if ids.shape[1] - prompt_width < minimum else logits

    return step


# ---- sampling filters ---------------------------------------------------------------------------


def temperature(t: float) -> LogitsStep:
    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / t

    return step


def top_k(k: int) -> LogitsStep:
    """Keep the k most likely tokens (ties at the k-th value are kept too)."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, NEG_INF)

    return step


def top_p(p: float) -> LogitsStep:
    """Nucleus: keep the smallest set of most likely tokens whose probability reaches p."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        kept = candidates(logits)
        if kept is not None:  # after top-k: sort those few (tokens already at -inf have no mass)
            sorted_logits, order = (t.flip(-1) for t in torch.topk(logits, kept, dim=-1))
        else:
            sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum <= 1 - p  # ascending order: the unlikely tail whose mass is <= 1 - p
        drop[..., -1:] = False  # the most likely token always stays
        return logits.masked_fill(torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, drop), NEG_INF)

    return step


def min_p(p: float) -> LogitsStep:
    """Keep tokens whose probability is at least p times that of the most likely token."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.softmax(dim=-1)
        drop = probs < p * probs.amax(dim=-1, keepdim=True)
        drop.scatter_(-1, probs.argmax(dim=-1, keepdim=True), False)
        return logits.masked_fill(drop, NEG_INF)

    return step


def typical_p(mass: float) -> LogitsStep:
    """Locally typical sampling: keep the tokens whose surprisal is closest to the entropy,
    up to probability `mass`."""

    def step(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        logp = logits.log_softmax(dim=-1)
        entropy = -(logp * logp.exp()).nansum(-1, keepdim=True)
        distance, order = torch.sort((-logp - entropy).abs(), dim=-1)
        cum = logits.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
        last = (cum < mass).sum(dim=-1, keepdim=True).clamp(max=logits.shape[-1] - 1)
        drop = distance > distance.gather(-1, last)
        drop[..., :1] = False
        return logits.masked_fill(drop.scatter(-1, order, drop), NEG_INF)

    return step


# ---- composition ----------------------------------------------------------------------------------


def pipeline(settings: GenerationSettings, prompt_width: int, *, sampling: bool | None = None) -> list[LogitsStep]:
    """The steps `settings` asks for, in application order. `prompt_width` is the (padded)
    prompt length, so steps can tell generated tokens from prompt tokens."""
    sampling = not settings.greedy if sampling is None else sampling
    steps: list[LogitsStep] = []
    if settings.repetition_penalty != 1.0:
        steps.append(repetition_penalty(settings.repetition_penalty))
    if settings.frequency_penalty or settings.presence_penalty:
        steps.append(frequency_presence_penalty(settings.frequency_penalty, settings.presence_penalty, prompt_width))
    if settings.no_repeat_ngram_size:
        steps.append(no_repeat_ngram(settings.no_repeat_ngram_size))
    if settings.bad_token_ids:
        steps.append(ban_tokens(settings.bad_token_ids))
    if settings.min_new_tokens and settings.stop_ids():
        steps.append(min_new_tokens(settings.min_new_tokens, prompt_width, sorted(settings.stop_ids())))
    steps.extend(settings.logits_hooks)
    if not sampling:
        return steps  # the argmax does not change under temperature and filters
    if settings.temperature not in (0.0, 1.0):
        steps.append(temperature(settings.temperature))
    if settings.top_k > 0:
        steps.append(top_k(settings.top_k))
    if settings.top_p < 1.0:
        steps.append(top_p(settings.top_p))
    if settings.min_p > 0.0:
        steps.append(min_p(settings.min_p))
    if settings.typical_p < 1.0:
        steps.append(typical_p(settings.typical_p))
    return steps


def apply(steps: Sequence[LogitsStep], ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    for step in steps:
        logits = step(ids, logits)
    return logits
