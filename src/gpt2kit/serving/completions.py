"""/v1/completions and /v1/chat/completions: requests -> scheduler jobs -> OpenAI's answers.

A request's prompts become one `Job` each (n rows); their events come back on one queue and
are turned into choices (whole answers) or chunks (server-sent events). The log-probabilities
of a prompt's own tokens (`echo` with `logprobs`, what evaluation harnesses score) come from
`evaluation.score`, the one function that scores given text; beam search runs between steps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gpt2kit.backends.loaded import LoadedModel
from gpt2kit.errors import GenerationError
from gpt2kit.evaluation.scoring import Scores, score
from gpt2kit.generation.decode import generate_all
from gpt2kit.generation.events import StreamEvent
from gpt2kit.generation.settings import GenerationSettings
from gpt2kit.generation.special_ids import special_ids
from gpt2kit.generation.text import completion_text, score_beams
from gpt2kit.serving.chat import ChatTemplate
from gpt2kit.serving.protocol import APIError, ChatRequest, CompletionRequest, prompts_of, settings_for
from gpt2kit.serving.scheduler import DONE, Job, QueueFullError, Scheduler

Disconnected = Callable[[], Awaitable[bool]]


@dataclass
class Choice:
    """One choice as it is built: its text so far and its tokens with log-probabilities."""

    index: int
    prompt: int  # which prompt
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[int, float] | None] = field(default_factory=list)
    finish_reason: str | None = None

    def add(self, event: StreamEvent) -> None:
        self.text += event.text
        self.token_ids += event.token_ids
        self.logprobs += event.logprobs
        self.top_logprobs += event.top_logprobs or [None] * len(event.token_ids)
        if event.finish_reason:
            self.finish_reason = openai_reason(event.finish_reason)


def openai_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


@dataclass
class Plan:
    """What a request asks, checked: prompts as ids, and each prompt's settings."""

    prompt_texts: list[str]
    prompt_ids: list[list[int]]
    settings: list[GenerationSettings]
    n: int
    echo: bool
    logprobs: int | None
    stream: bool
    include_usage: bool
    max_tokens: int
    started: float = field(default_factory=time.perf_counter)


class Completions:
    def __init__(self, loaded: LoadedModel, scheduler: Scheduler, model_name: str, template: ChatTemplate,
                 timeout: float, observe: Callable[[str, float], None] | None = None) -> None:
        self.scheduler, self.model_name = scheduler, model_name
        self.observe = observe or (lambda _kind, _seconds: None)  # ("first_token" | "next_token", seconds)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.template, self.timeout = template, timeout
        self.context = self.model.config.n_positions
        self.special = special_ids(self.model)

    # ---- checking ----------------------------------------------------------------------------------------
    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.model_name:
            raise APIError(f"the model {name!r} does not exist; this server serves {self.model_name!r}",
                           status=404, param="model", code="model_not_found")

    def plan(self, request: CompletionRequest | ChatRequest, prompts: list[str | list[int]], max_tokens: int | None,
             logprobs: int | None, echo: bool, extra_stops: tuple[str, ...] = ()) -> Plan:
        self.check_model(request.model)
        vocab = self.model.config.vocab_size
        texts, ids = [], []
        for prompt in prompts:
            if isinstance(prompt, str):
                texts.append(prompt)
                ids.append(self.tokenizer.encode(prompt, allow_special=True))
            else:
                bad = next((t for t in prompt if not 0 <= t < vocab), None)
                if bad is not None:
                    raise APIError(f"prompt: token id {bad} is outside the vocabulary (0..{vocab - 1})",
                                   param="prompt")
                texts.append(self.tokenizer.decode(prompt))
                ids.append(list(prompt))
        longest = max(len(i) for i in ids)
        if max_tokens is None:
            max_tokens = max(0, self.context - longest)
        if max_tokens < 0 or max_tokens > self.context:
            raise APIError(f"max_tokens must be in [0, {self.context}] (the model's context), got {max_tokens}",
                           param="max_tokens")
        if max_tokens > 0 and longest >= self.context:
            raise APIError(f"the prompt has {longest} tokens; the model's context of {self.context} tokens leaves "
                           "no room to generate: shorten it", param="prompt", code="context_length_exceeded")
        try:
            settings = settings_for(request, max_tokens=max_tokens, logprobs=logprobs, vocab_size=vocab,
                                    extra_stops=extra_stops).for_model(self.special)
        except GenerationError as err:
            raise APIError(str(err)) from None
        per_prompt = [dataclasses.replace(settings, max_new_tokens=min(max_tokens, self.context - len(i)))
                      for i in ids]
        options = request.stream_options
        return Plan(texts, ids, per_prompt, request.n or 1, echo, logprobs, bool(request.stream),
                    bool(options and options.include_usage), max_tokens)

    # ---- running -------------------------------------------------------------------------------------------
    async def prompt_scores(self, plan: Plan) -> list[Scores] | None:
        if not (plan.echo and plan.logprobs is not None):
            return None
        return await self.scheduler.call(lambda: score(self.model, plan.prompt_ids, top_logprobs=plan.logprobs or 0))

    async def run(self, plan: Plan, disconnected: Disconnected) -> AsyncIterator[tuple[int, StreamEvent]]:
        """(choice index, event) as tokens are generated, for every choice of every prompt."""
        if plan.max_tokens == 0:
            return
        if plan.settings[0].num_beams > 1:
            for index, event in await self._beams(plan):
                yield index, event
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        jobs = [Job(ids, s, loop, queue) for ids, s in zip(plan.prompt_ids, plan.settings, strict=True)]
        offsets = {job: i * plan.n for i, job in enumerate(jobs)}
        try:
            for job in jobs:
                self.scheduler.submit(job)
        except QueueFullError as err:
            for job in jobs:
                job.cancelled = True
            raise APIError(str(err), status=429, type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": "1"}) from None
        deadline = time.monotonic() + self.timeout
        running, last = len(jobs), None
        try:
            while running:
                try:
                    job, item = await asyncio.wait_for(queue.get(), timeout=0.1)
                except TimeoutError:
                    item = None
                    job = None
                if job is None or queue.empty():  # idle, or caught up: is the client still there?
                    if await disconnected():
                        return
                    if time.monotonic() > deadline:
                        raise APIError(f"the request took longer than the server's limit of {self.timeout:g} s",
                                       status=408, type="timeout_error", code="timeout")
                if job is None:
                    continue
                if item is DONE:
                    running -= 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    now = time.perf_counter()
                    self.observe("first_token" if last is None else "next_token", now - (last or plan.started))
                    last = now
                    yield offsets[job] + item.index, item
        finally:
            for job in jobs:
                job.cancelled = True

    async def _beams(self, plan: Plan) -> list[tuple[int, StreamEvent]]:
        settings = plan.settings[0]

        def search():
            results = []
            for ids, s in zip(plan.prompt_ids, plan.settings, strict=True):
                generations = generate_all(self.model, [ids], s, self.tokenizer.token_bytes)
                if s.logprobs is not None:  # beams rank by summed scores; their own logprobs are scored after
                    score_beams(self.model, [ids], generations, s)
                results.append(generations)
            return results

        results = await self.scheduler.call(search)
        events = []
        for p, generations in enumerate(results):
            for j, g in enumerate(generations):
                text = completion_text(self.tokenizer, g.token_ids, g.finish_reason, settings)
                values = g.logprobs if g.logprobs is not None else [None] * len(g.token_ids)
                events.append((p * plan.n + j, StreamEvent(j, text, g.token_ids, values, g.top_logprobs,
                                                           g.finish_reason)))
        return events

    # ---- /v1/completions -----------------------------------------------------------------------------------
    def plan_completion(self, request: CompletionRequest) -> Plan:
        return self.plan(request, prompts_of(request.prompt), request.max_tokens, request.logprobs,
                         bool(request.echo))

    def completion_logprobs(self, choice: Choice, prompt: Scores | None) -> dict[str, Any]:
        ids = (prompt.token_ids if prompt else []) + choice.token_ids
        values = (prompt.logprobs if prompt else []) + choice.logprobs
        tops = ((prompt.top_logprobs or [None] * len(prompt.token_ids)) if prompt else []) + choice.top_logprobs
        tokens = [self.tokenizer.decode([t]) for t in ids]
        offsets, at = [], 0
        for t in tokens:
            offsets.append(at)
            at += len(t)
        return {"tokens": tokens, "token_logprobs": values, "text_offset": offsets,
                "top_logprobs": [None if top is None else {self.tokenizer.decode([t]): v for t, v in top.items()}
                                 for top in tops]}

    async def completion(self, plan: Plan, disconnected: Disconnected) -> dict[str, Any]:
        scores = await self.prompt_scores(plan)
        choices = [Choice(i, i // plan.n) for i in range(len(plan.prompt_ids) * plan.n)]
        async for index, event in self.run(plan, disconnected):
            choices[index].add(event)
        out = []
        for c in choices:
            item = {"index": c.index, "text": (plan.prompt_texts[c.prompt] if plan.echo else "") + c.text,
                    "logprobs": None, "finish_reason": c.finish_reason or "length"}
            if plan.logprobs is not None:
                item["logprobs"] = self.completion_logprobs(c, scores[c.prompt] if scores else None)
            out.append(item)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.model_name, "choices": out, "usage": self.usage(plan, choices)}

    async def completion_chunks(self, plan: Plan, disconnected: Disconnected) -> AsyncIterator[dict[str, Any]]:
        scores = await self.prompt_scores(plan)
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.model_name}
        choices = [Choice(i, i // plan.n) for i in range(len(plan.prompt_ids) * plan.n)]

        def chunk(c: Choice, text: str, part: Choice | None, reason: str | None) -> dict[str, Any]:
            item = {"index": c.index, "text": text, "logprobs": None, "finish_reason": reason}
            if plan.logprobs is not None and part is not None:
                item["logprobs"] = self.completion_logprobs(part, None)
            return {**head, "choices": [item], **({"usage": None} if plan.include_usage else {})}

        if plan.echo:
            for c in choices:
                prompt = scores[c.prompt] if scores else None
                echoed = Choice(c.index, c.prompt)
                item = chunk(c, plan.prompt_texts[c.prompt], None, None)
                if prompt is not None:
                    item["choices"][0]["logprobs"] = self.completion_logprobs(echoed, prompt)
                yield item
        async for index, event in self.run(plan, disconnected):
            c = choices[index]
            c.add(event)
            part = Choice(index, c.prompt)
            part.add(event)
            if event.text or event.finish_reason:
                yield chunk(c, event.text, part, c.finish_reason)
        for c in choices:
            if c.finish_reason is None:  # max_tokens 0
                c.finish_reason = "length"
                yield chunk(c, "", None, "length")
        if plan.include_usage:
            yield {**head, "choices": [], "usage": self.usage(plan, choices)}

    def usage(self, plan: Plan, choices: list[Choice]) -> dict[str, int]:
        prompt = sum(len(i) for i in plan.prompt_ids)
        completion = sum(len(c.token_ids) for c in choices)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    # ---- /v1/chat/completions ------------------------------------------------------------------------------
    def plan_chat(self, request: ChatRequest) -> Plan:
        if not request.messages:
            raise APIError("messages is empty", param="messages")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.content or ""}
                    for m in request.messages]
        prompt = self.template.render(messages)
        top = request.top_logprobs
        if top is not None and not request.logprobs:
            raise APIError("top_logprobs needs logprobs: true", param="top_logprobs")
        logprobs = (top or 0) if request.logprobs else None
        max_tokens = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
        return self.plan(request, [prompt], max_tokens, logprobs, False, self.template.stops)

    def chat_logprobs(self, choice: Choice) -> dict[str, Any]:
        def entry(token: int, value: float) -> dict[str, Any]:
            text = self.tokenizer.token_bytes(token)
            return {"token": text.decode("utf-8", errors="replace"), "logprob": value, "bytes": list(text)}

        return {"content": [{**entry(t, v), "top_logprobs": [entry(a, b) for a, b in (top or {}).items()]}
                            for t, v, top in zip(choice.token_ids, choice.logprobs, choice.top_logprobs,
                                                 strict=True)]}

    async def chat(self, plan: Plan, disconnected: Disconnected) -> dict[str, Any]:
        choices = [Choice(i, 0) for i in range(plan.n)]
        async for index, event in self.run(plan, disconnected):
            choices[index].add(event)
        out = [{"index": c.index, "message": {"role": "assistant", "content": c.text.strip()},
                "logprobs": self.chat_logprobs(c) if plan.logprobs is not None else None,
                "finish_reason": c.finish_reason or "length"} for c in choices]
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name, "choices": out, "usage": self.usage(plan, choices)}

    async def chat_chunks(self, plan: Plan, disconnected: Disconnected) -> AsyncIterator[dict[str, Any]]:
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.model_name}
        extra = {"usage": None} if plan.include_usage else {}
        choices = [Choice(i, 0) for i in range(plan.n)]
        for c in choices:
            yield {**head, "choices": [{"index": c.index, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None, "finish_reason": None}], **extra}
        async for index, event in self.run(plan, disconnected):
            c = choices[index]
            text = event.text if c.text.strip() else event.text.lstrip()  # the reply line ends before a space
            c.add(dataclasses.replace(event, text=text))
            part = Choice(index, 0)
            part.add(event)
            if text or event.finish_reason:
                delta = {"content": text} if text else {}
                yield {**head, "choices": [{"index": index, "delta": delta,
                                            "logprobs": self.chat_logprobs(part) if plan.logprobs is not None
                                            else None, "finish_reason": c.finish_reason}], **extra}
        for c in choices:
            if c.finish_reason is None:
                yield {**head, "choices": [{"index": c.index, "delta": {}, "logprobs": None,
                                            "finish_reason": "length"}], **extra}
        if plan.include_usage:
            yield {**head, "choices": [], "usage": self.usage(plan, choices)}
