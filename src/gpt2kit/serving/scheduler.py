"""Continuous batching: every running request's rows decode together, one step at a time.

A request (a `Job`: one prompt, its settings, n rows) waits in a bounded queue until its rows
fit in the batch, then is prefilled with the other newcomers and joins the running rows
(`generation.rows.RowBatch`); each step, every job's `Chooser` picks its rows' tokens with its
own settings and random generator, and a finished or cancelled job leaves at once, freeing
its rows for the next one. Work that cannot share the batch (beam search, scoring a prompt)
runs between steps through `call`. The model is only ever touched by the scheduler's thread;
events go back to each request's asyncio queue.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gpt2kit.backends.decoder import Decoder
from gpt2kit.devices import torch_threads
from gpt2kit.errors import GPT2KitError
from gpt2kit.generation.decode import Chooser, make_generator
from gpt2kit.generation.events import StreamEvent, TextPieces, Usage
from gpt2kit.generation.rows import RowBatch
from gpt2kit.generation.settings import GenerationSettings
from gpt2kit.tokenizer import Tokenizer

DONE = None  # the item that ends a job's queue


class QueueFullError(GPT2KitError):
    """More requests are waiting than the server was told to hold (--max-queue)."""


class SchedulerStopped(GPT2KitError):
    """The server is shutting down."""


@dataclass(eq=False)
class Job:
    """One prompt decoded as `settings.num_samples` rows. Its queue (which the jobs of one request
    share) receives (job, StreamEvent) per generated token (index = the row), then (job, DONE); or
    (job, an exception), then (job, DONE)."""

    prompt: list[int]
    settings: GenerationSettings  # bound to the model's special ids (for_model)
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False  # set by the request's side (a client that went away, a timeout)
    # scheduler state
    chooser: Chooser | None = None
    tokens: torch.Tensor | None = None  # (n, prompt + new) ids so far, for the logits steps
    pieces: list[TextPieces] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.settings.num_samples

    def send(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (self, item))


class Scheduler:
    def __init__(self, model: Decoder, tokenizer: Tokenizer, *, max_batch_size: int = 16, max_queue: int = 64,
                 on_step: Callable[[int], None] | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_batch_size, self.max_queue = max_batch_size, max_queue
        self.on_step = on_step  # called with each step's batch size (metrics)
        self.waiting: collections.deque[Job] = collections.deque()
        self.calls: collections.deque[tuple[Callable[[], Any], asyncio.Future, asyncio.AbstractEventLoop]] = \
            collections.deque()
        self.active: list[Job] = []
        self.batch = RowBatch(model)
        self.logits: torch.Tensor | None = None  # (rows, V): next-token logits of the active rows
        self.wake = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="gpt2kit-scheduler", daemon=True)

    # ---- the request side (event loop thread) -----------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Cancel what waits and runs, and end the thread."""
        with self.wake:
            self.stopping = True
            self.wake.notify()
        self.thread.join(timeout=30)

    @property
    def queue_depth(self) -> int:
        return len(self.waiting)

    @property
    def active_rows(self) -> int:
        return sum(j.rows for j in self.active)

    def submit(self, job: Job) -> None:
        if job.rows > self.max_batch_size:
            raise GPT2KitError(f"n={job.rows} rows exceed the server's max batch size of {self.max_batch_size}")
        with self.wake:
            if self.stopping:
                raise SchedulerStopped("the server is shutting down")
            if len(self.waiting) >= self.max_queue:
                raise QueueFullError(f"{len(self.waiting)} requests are already waiting (the server holds "
                                     f"{self.max_queue}); retry later")
            self.waiting.append(job)
            self.wake.notify()

    def call(self, fn: Callable[[], Any]) -> asyncio.Future:
        """Run fn() on the scheduler's thread between steps (it uses the model alone); an awaitable
        of its result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self.wake:
            if self.stopping:
                raise SchedulerStopped("the server is shutting down")
            self.calls.append((fn, future, loop))
            self.wake.notify()
        return future

    # ---- the scheduler's thread ---------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        with torch_threads(self.model):  # this thread does all of the server's PyTorch work
            self._loop()

    def _loop(self) -> None:
        while True:
            with self.wake:
                while not (self.stopping or self.waiting or self.calls or self.active):
                    self.wake.wait()
                if self.stopping:
                    break
                call = self.calls.popleft() if self.calls else None
                newcomers = self._take_newcomers()
            if call is not None:
                self._run_call(*call)
            try:
                if newcomers:
                    self._admit(newcomers)
                if self.active:
                    self._step()
            except Exception as err:  # a bug or an out-of-memory: the running requests fail, the server stays
                for job in self.active:
                    job.send(err)
                    job.send(DONE)
                self.active, self.logits = [], None
                self.batch = RowBatch(self.model)
        for job in [*self.active, *self.waiting]:
            job.send(SchedulerStopped("the server is shutting down"))
            job.send(DONE)
        for _, future, loop in self.calls:
            loop.call_soon_threadsafe(_set_exception, future, SchedulerStopped("the server is shutting down"))

    def _take_newcomers(self) -> list[Job]:
        """Waiting jobs that fit, in order of arrival (a job that does not fit yet blocks those behind it)."""
        taken, rows = [], self.active_rows
        while self.waiting:
            job = self.waiting[0]
            if job.cancelled:
                self.waiting.popleft()
                job.send(DONE)
                continue
            if rows + job.rows > self.max_batch_size:
                break
            taken.append(self.waiting.popleft())
            rows += job.rows
        return taken

    def _run_call(self, fn: Callable[[], Any], future: asyncio.Future, loop: asyncio.AbstractEventLoop) -> None:
        try:
            result = fn()
        except Exception as err:
            loop.call_soon_threadsafe(_set_exception, future, err)
        else:
            loop.call_soon_threadsafe(_set_result, future, result)

    def _admit(self, jobs: list[Job]) -> None:
        for job in jobs:
            settings = job.settings
            budgets = [settings.new_tokens_for(len(job.prompt))] * job.rows
            generator = None if settings.greedy else make_generator(settings, self.model.device)
            job.chooser = Chooser(settings, budgets, len(job.prompt), generator, self.tokenizer.token_bytes)
            job.tokens = torch.full((job.rows, len(job.prompt) + budgets[0]), settings.pad_token_id,
                                    dtype=torch.long, device=self.model.device)
            job.tokens[:, :len(job.prompt)] = torch.tensor(job.prompt, dtype=torch.long)
            job.pieces = [TextPieces(self.tokenizer, settings.stop) for _ in range(job.rows)]
        logits = self.batch.add([j.prompt for j in jobs], [j.rows for j in jobs])
        self.logits = logits if self.logits is None else torch.cat([self.logits, logits])
        self.active += jobs

    def _step(self) -> None:
        assert self.logits is not None
        if self.on_step is not None:
            self.on_step(self.batch.size)
        next_tokens, kept_rows, kept_jobs, row = [], [], [], 0
        for job in self.active:
            rows = slice(row, row + job.rows)
            row += job.rows
            if job.cancelled:
                job.send(DONE)
                continue
            chooser = job.chooser
            width = len(job.prompt) + chooser.generated
            nxt, out = chooser(job.tokens[:, :width], self.logits[rows])
            if width < job.tokens.shape[1]:
                job.tokens[:, width] = nxt
            for i, token in enumerate(out):
                if token is None:
                    continue
                reason = chooser.reasons[i]
                top = [token.top_logprobs] if token.top_logprobs is not None else None
                usage = Usage(len(job.prompt), chooser.generated) if reason else None
                job.send(StreamEvent(i, job.pieces[i].add(token.id, reason), [token.id], [token.logprob], top,
                                     reason, usage))
            if chooser.finished:
                job.send(DONE)
                continue
            kept_jobs.append(job)
            kept_rows += range(rows.start, rows.stop)
            next_tokens.append(nxt)
        self.active = kept_jobs
        self.batch.keep(kept_rows)
        if not kept_jobs:
            self.logits = None
            return
        self.logits = self.batch.step(torch.cat(next_tokens))


def _set_result(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, err: BaseException) -> None:
    if not future.done():
        future.set_exception(err)
