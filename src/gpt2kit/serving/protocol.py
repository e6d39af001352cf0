"""The OpenAI API's request bodies, checked, and turned into gpt2kit's generation settings.

Types are checked by pydantic (a wrong type is a 400 naming the field); values by `check_*`
below, each refusal an `APIError` that names the field as OpenAI's errors do. Unknown fields
are ignored, as OpenAI-compatible servers do for the fields clients add.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict

from gpt2kit.generation.logprobs import MAX_TOP
from gpt2kit.generation.settings import GenerationSettings

MAX_N = 16  # choices per prompt
MAX_STOPS = 16


class APIError(Exception):
    """An error answered to the client: HTTP status and OpenAI's error object."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 type: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.type, self.code = message, status, param, type, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    """Fields both endpoints share (with gpt2kit's extensions top_k, min_p, repetition_penalty, num_beams)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    n: int | None = 1
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    user: str | None = None
    top_k: int | None = 0
    min_p: float | None = 0.0
    repetition_penalty: float | None = 1.0
    num_beams: int | None = 1


class CompletionRequest(Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = 16
    logprobs: int | None = None
    echo: bool | None = False
    suffix: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer"]
    content: str | None = None


class ChatRequest(Sampling):
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None


def check_number(value: float, name: str, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False) -> None:
    if (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high):
        lower = "" if low is None else f"{'(' if low_open else '['}{low}, "
        span = f"in {lower}{high}]" if high is not None else f"{'>' if low_open else '>='} {low}"
        raise APIError(f"{name} must be {span}, got {value}", param=name)


def settings_for(request: Sampling, *, max_tokens: int, logprobs: int | None, vocab_size: int,
                 extra_stops: tuple[str, ...] = ()) -> GenerationSettings:
    """Generation settings of a request, every value checked with the field it came from named."""
    temperature = 1.0 if request.temperature is None else request.temperature
    top_p = 1.0 if request.top_p is None else request.top_p
    n = 1 if request.n is None else request.n
    beams = request.num_beams or 1
    check_number(temperature, "temperature", 0)
    check_number(top_p, "top_p", 0, 1, low_open=True)
    if not 1 <= n <= MAX_N:
        raise APIError(f"n must be in [1, {MAX_N}], got {n}", param="n")
    for name in ("presence_penalty", "frequency_penalty"):
        check_number(getattr(request, name) or 0.0, name, -2, 2)
    top_k = request.top_k or 0
    check_number(top_k, "top_k", 0)
    check_number(request.min_p or 0.0, "min_p", 0, 1)
    repetition = 1.0 if request.repetition_penalty is None else request.repetition_penalty
    check_number(repetition, "repetition_penalty", 0, low_open=True)
    if not 1 <= beams <= MAX_N:
        raise APIError(f"num_beams must be in [1, {MAX_N}], got {beams}", param="num_beams")
    if beams > 1 and request.stream:
        raise APIError("beam search chooses its results at the end, so it cannot stream", param="stream")
    if beams > 1 and n > beams:
        raise APIError(f"n ({n}) cannot exceed num_beams ({beams})", param="n")
    if logprobs is not None and not 0 <= logprobs <= MAX_TOP:
        raise APIError(f"logprobs must be in [0, {MAX_TOP}], got {logprobs}", param="logprobs")
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > MAX_STOPS or any(not s for s in stops):
        raise APIError(f"stop takes up to {MAX_STOPS} non-empty strings", param="stop")
    hooks = (logit_bias_hook(request.logit_bias, vocab_size),) if request.logit_bias else ()
    sampling = temperature > 0 and beams == 1
    options: dict[str, Any] = dict(
        max_new_tokens=max_tokens, temperature=temperature if beams == 1 else 1.0,
        repetition_penalty=repetition, frequency_penalty=request.frequency_penalty or 0.0,
        presence_penalty=request.presence_penalty or 0.0, stop=(*stops, *extra_stops), seed=request.seed,
        logprobs=logprobs, logits_hooks=hooks)
    if sampling:
        options.update(top_p=top_p, top_k=top_k, min_p=request.min_p or 0.0, num_samples=n)
    elif beams > 1:
        options.update(num_beams=beams, num_return_sequences=n, do_sample=False)
    else:
        options.update(num_samples=n)
    return GenerationSettings(**options)


def logit_bias_hook(bias: dict[str, float], vocab_size: int):
    """OpenAI's logit_bias ({"token id": -100..100}) as a logits step."""
    ids, values = [], []
    for key, value in bias.items():
        try:
            token = int(key)
        except ValueError:
            raise APIError(f"logit_bias keys are token ids, got {key!r}", param="logit_bias") from None
        if not 0 <= token < vocab_size:
            raise APIError(f"logit_bias: token id {token} is outside the vocabulary (0..{vocab_size - 1})",
                           param="logit_bias")
        check_number(value, "logit_bias", -100, 100)
        ids.append(token)
        values.append(value)

    def logit_bias(_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        out = logits.clone()
        out[:, ids] += torch.tensor(values, dtype=logits.dtype, device=logits.device)
        return out

    return logit_bias


def prompts_of(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """A completion request's prompts: texts, or token id lists."""
    if isinstance(prompt, str):
        prompts: list[str | list[int]] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [list(prompt)]  # type: ignore[arg-type]
    else:
        prompts = list(prompt)  # type: ignore[arg-type]
    if not prompts or any(len(p) == 0 for p in prompts):
        raise APIError("prompt is empty: give text or token ids", param="prompt")
    return prompts
