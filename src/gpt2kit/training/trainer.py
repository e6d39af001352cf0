"""The fine-tuning loop: batches -> objective -> optimizer step, with exact resume.

`finetune(TrainConfig)` trains and returns a summary; `gpt2kit finetune` is a thin
wrapper. `Trainer(config, objective=..., data=...)` trains any objective (an nn.Module
from a batch to its loss) on any resumable source of batches; by default the next-token
loss on random windows of `config.data`. Every optimizer step draws `grad_accum` batches,
clips the gradient norm, steps AdamW at the schedule's learning rate, and appends a line to
metrics.jsonl. A run killed at any point resumes from its latest checkpoint and
continues with the same losses it would have had (bitwise on CPU). Ctrl-C stops after
the current step, saves a checkpoint and raises `TrainingInterrupted`.

A run may be resumed with another --max-steps (or --num-epochs): it continues to the new
total, and the learning-rate schedule (warmup, linear or cosine decay) from then on is the
one of the new total. Resuming a run that has already reached its total does nothing.
What is written where in the run's folder, and when, is training/run_folder.py.

Under torchrun the same loop runs on every rank (training/distributed.py): each rank trains
on its rows of the global batch through DDP or FSDP, rank 0 writes, and checkpoints hold
what one process would hold, so a run resumes on any number of ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from gpt2kit.data.batch import Batch, TrainingData
from gpt2kit.devices import resolve_device, slow_dtype_warning
from gpt2kit.errors import TrainingError
from gpt2kit.generation import complete
from gpt2kit.host_memory import keep_freed_memory
from gpt2kit.model.classifier import GPT2Classifier
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training import distributed
from gpt2kit.training.config import TrainConfig
from gpt2kit.training.distributed import RankSlice, gradient_sync, rows_of
from gpt2kit.training.lora import adapter_state, add_lora, has_lora
from gpt2kit.training.objectives import LanguageModeling, Objective, lm_loss  # noqa: F401 - older callers import lm_loss here
from gpt2kit.training.reproducibility import differences, fingerprint, reproducible_math
from gpt2kit.training.run_folder import RunFolder
from gpt2kit.training.schedule import lr_at, make_optimizer
from gpt2kit.training.window_data import WindowData
from gpt2kit.weights import read_model


@dataclass
class TrainResult:
    out: Path
    steps: int  # the step the run is at
    train_loss: float  # of the last step (nan when none was logged)
    val_loss: float | None
    model_dir: Path
    new_steps: int = 0  # steps trained by this call: 0 when a resumed run had nothing left to do
    stopped_early: bool = False


class TrainingInterrupted(KeyboardInterrupt):  # noqa: N818 - a KeyboardInterrupt, named like one
    """Ctrl-C while training: the run stopped after a complete step and saved it in `checkpoint`."""

    def __init__(self, step: int, total_steps: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted at step {step}; saved in {checkpoint}")
        self.step, self.total_steps, self.checkpoint = step, total_steps, checkpoint


def _autocast(config: TrainConfig, device: torch.device):
    if config.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_half(config))


def _half(config: TrainConfig) -> torch.dtype:
    return torch.bfloat16 if config.precision == "bf16" else torch.float16


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def task_data(task: str) -> Callable[[TrainConfig, Tokenizer, int], TrainingData]:
    """A task's default data: windows of text, summarization examples, or labelled texts. The first
    two train the same LanguageModeling objective (the examples' labels already leave out what no
    loss counts); labelled texts give their own Classification objective (`ClassificationData.objective`)."""
    if task == "summarization":
        from gpt2kit.training.summary_data import SummaryData

        return SummaryData
    if task == "classify":
        from gpt2kit.training.classification_data import ClassificationData

        return ClassificationData
    return WindowData


class Trainer:
    """`objective(model)` builds the module to train from the loaded model (it holds the model as
    `.model`); `data(config, tokenizer, seq_len)` gives the batches, rows of at most seq_len
    positions (`config.seq_len`, or the model's context); by default those of `config.task`."""

    def __init__(self, config: TrainConfig, *, objective: Callable[[GPT2], Objective] | None = None,
                 data: Callable[[TrainConfig, Tokenizer, int], TrainingData] | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":  # before MKL's first call: its mode is fixed from then on
            reproducible_math()
        if config.precision == "fp16" and self.device.type != "cuda":
            raise TrainingError("fp16 training needs CUDA (it relies on a gradient scaler); use --precision bf16")
        if config.precision != "fp32" and (warning := slow_dtype_warning(_half(config), self.device,
                                                                          "--precision fp32")):
            print(warning, file=sys.stderr)
        if config.fsdp and not distributed.launched():
            raise TrainingError("--fsdp shards the model over the processes torchrun starts: run `torchrun "
                                "--nproc-per-node N -m gpt2kit finetune ... --fsdp`, or drop --fsdp")
        if config.cpu_offload and self.device.type != "cuda":
            raise TrainingError("--cpu-offload keeps FSDP's shards in host memory between uses on a GPU; on the CPU "
                                "they are there already: drop --cpu-offload")
        self.world = distributed.join(self.device, config.dist_timeout)
        self.device = self.world.device(self.device)
        self.folder = RunFolder(config, writer=self.world.is_main)
        if self.device.type == "cpu":  # faster steps for some held memory, unless memory comes first
            # (FSDP is chosen for memory: measured at 124M on 2 ranks, held memory added 0.45 GB per rank)
            keep_freed_memory(default=not (config.grad_checkpointing or config.fsdp))
        torch.manual_seed(config.seed + self.world.rank)  # each rank its own dropout masks
        self._load_model(config)
        ctx = self.model.config.n_positions
        self.seq_len = config.seq_len or ctx
        if self.seq_len > ctx:
            raise TrainingError(f"seq-len {self.seq_len} is larger than the model's context of {ctx}")
        # every rank draws the global batch and keeps its own rows: the same windows on any number of ranks
        data_config = dataclasses.replace(config, batch_size=config.batch_size * self.world.size)
        self.data = (data or task_data(config.task))(data_config if self.world.size > 1 else config,
                                                     self.tokenizer, self.seq_len)
        self.sampler = RankSlice(self.data.train, self.world) if self.world.size > 1 else self.data.train
        self._prepare_model()
        self.objective = (objective or self._task_objective())(self.model).to(self.device).train()
        self.folder.export = self.objective.exported
        self.module = distributed.wrap(self.objective, self.world, self.device, config.fsdp)  # what training calls
        self.optimizer = make_optimizer(self.objective, config)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.steps_per_epoch = config.steps_per_epoch or max(1, self.sampler.batches_per_epoch // config.grad_accum)
        limits = [n for n in (config.max_steps,) if n]
        if config.num_epochs:
            limits.append(config.num_epochs * self.steps_per_epoch)
        self.total_steps = min(limits)
        self.step = 0
        self.step_tokens = 0  # positions the last step ran on, for its tokens per second
        self.best_val = math.inf
        self.bad_evals = 0
        self.last_val: float | None = None
        self.last_val_step = -1
        self.fingerprint = fingerprint(self.device)
        self.interrupted = False  # set by Ctrl-C: stop after the current step
        self.stop_agreed = False  # with several ranks: whether any rank was interrupted, as of the last step
        self.resumed_from: Path | None = None
        if config.resume:
            self.resumed_from = self.world.decide(self._find_resume)
            if self.resumed_from is not None:
                self._resume(self.resumed_from)
        self.world.barrier("setting up")  # no rank writes into the folder before every rank has checked it

    def summary(self) -> str:
        """What the run is about to do, one line per fact, for a reader about to wait for it."""
        config, model = self.config, self.model
        params = sum(_numel(p) for p in model.parameters())
        trained = sum(_numel(p) for p in model.parameters() if p.requires_grad)
        name = config.model if config.model else f"{config.from_scratch}, random weights (seed {config.seed})"
        steps = f"{self.total_steps:,} ({self.total_steps / self.steps_per_epoch:,.2f} epochs)"
        if self.resumed_from is not None:
            steps += f", resuming at step {self.step:,} from {self.resumed_from}"
        lines = [
            ("model", name),
            ("parameters", f"{params:,}" + (f" ({trained:,} trained)" if trained != params else "")),
            *self.data.summary_lines(self.steps_per_epoch, config.grad_accum),
            *([("ranks", self.world.describe("FSDP" if config.fsdp else "DDP", config.batch_size))]
              if self.world.grouped else []),
            ("steps", steps),
            ("device", f"{self.device}, {config.precision}"),
            ("output", self.folder.describe()),
        ]
        return "\n".join(f"{label:<12}{value}" for label, value in lines)

    # ---- set-up -------------------------------------------------------------------------------------

    def _load_model(self, config: TrainConfig) -> None:
        """The model to train and its tokenizer (kept apart from the rest of the set-up); of a classifier,
        its GPT2 (the head goes to the objective, `start_classifier`)."""
        self.start_classifier: GPT2Classifier | None = None
        if config.from_scratch:
            self.model = GPT2.from_config(config.from_scratch, seed=config.seed)
            self.tokenizer = Tokenizer.from_pretrained()
        else:
            model, source = read_model(config.model)
            if isinstance(model, GPT2Classifier):
                self.start_classifier, model = model, model.transformer
            self.model = model
            self.tokenizer = Tokenizer.for_model(source.path)

    def _task_objective(self) -> Callable[[GPT2], Objective]:
        """The objective of config.task: the data's own for classification, else next-token prediction."""
        if self.config.task == "classify":
            where = self.config.model or f"the {self.config.from_scratch} model"
            return partial(self.data.objective, start=self.start_classifier, where=str(where),
                           say=self.world.is_main and not self.config.resume)
        return LanguageModeling

    def _prepare_model(self) -> None:
        config, model = self.config, self.model
        model.to(self.device)
        if config.freeze_layers:
            if config.freeze_layers > model.config.n_layer:
                raise TrainingError(f"freeze-layers {config.freeze_layers} > the model's {model.config.n_layer} layers")
            for module in (model.wte, model.wpe, *model.h[:config.freeze_layers]):
                for p in module.parameters():
                    p.requires_grad_(False)
        if config.dropout is not None:
            model.set_dropout(config.dropout)
        if config.lora_rank:
            add_lora(model, config.lora_rank, config.lora_alpha)
        model.gradient_checkpointing = config.grad_checkpointing
        model.train()

    # ---- checkpoints --------------------------------------------------------------------------------

    def _own_state(self) -> dict[str, torch.Tensor]:
        """The objective's tensors outside the model (a classifier head, say): empty for language modeling."""
        return {k: v.detach().cpu() for k, v in self.objective.state_dict().items() if not k.startswith("model.")}

    def _plain_model(self) -> GPT2 | None:
        """The model with whole weights, to write or sample from: FSDP's shards gathered (a collective
        every rank joins; rank 0 gets the model, the others None)."""
        if not self.config.fsdp:
            return self.model
        from gpt2kit.weights.folder import model_from_state

        weights = distributed.full_model_state(self.model)
        return model_from_state(self.model.config, weights) if self.world.is_main else None

    def _save(self) -> Path:
        """A checkpoint as one process would write it (whole weights and optimizer state), with
        every rank's RNG state; rank 0 writes it."""
        optimizer = (distributed.full_optimizer_state(self.optimizer) if self.config.fsdp
                     else self.optimizer.state_dict())
        rng_ranks = self.world.gather(_rng_state(self.device))
        model = self._plain_model()
        if not self.world.is_main:
            return self.folder.checkpoint(self.step)
        state = {
            "step": self.step, "best_val": self.best_val, "bad_evals": self.bad_evals,
            "last_val": self.last_val, "last_val_step": self.last_val_step,
            "optimizer": optimizer, "sampler": self.sampler.state_dict(),
            "rng": rng_ranks[0], "lora": has_lora(self.model), "adapters": adapter_state(self.model),
            "fingerprint": self.fingerprint, "world_size": self.world.size,
        }
        if self.world.size > 1:
            state["rng_ranks"] = rng_ranks
        if own := self._own_state():
            state["objective"] = own
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return self.folder.save_checkpoint(self.step, model, self.tokenizer, state)

    def _find_resume(self) -> Path | None:
        """The checkpoint to resume; under torchrun, None (start) while the run has none yet: the
        same command, --resume included, starts a run and continues it after `--max-restarts`."""
        if self.world.grouped and self.config.resume == "latest" and not self.folder.checkpoints():
            self.folder.resumed(self.folder.checkpoint(0), 0)  # metrics of an attempt that saved nothing go
            print(f"note: {self.config.out} holds no checkpoint yet: the run starts from step 0", file=sys.stderr)
            return None
        return self.folder.find_resume()

    def _resume(self, path: Path) -> None:
        state = self.folder.load_resume(path, self.world.size)
        if state.get("lora") and not has_lora(self.model):
            raise TrainingError(f"{path}: was trained with LoRA; resume with the same --lora-rank")
        if state.get("lora"):
            missing = self.model.load_state_dict(state["adapters"], strict=False).unexpected_keys
            if missing:
                raise TrainingError(f"{path}: adapters do not fit this model")
        else:
            distributed.load_full_model_state(self.model, GPT2.from_pretrained(path).state_dict())
        if "objective" in state:
            self.objective.load_state_dict({**self.objective.state_dict(), **state["objective"]})
        changed = differences(state.get("fingerprint", {}), self.fingerprint)
        if changed and self.world.is_main:
            print(f"warning: {path} was saved under other conditions ({'; '.join(changed)}); the resumed run "
                  "continues, but its losses match an uninterrupted run only to rounding", file=sys.stderr)
        optimizer = state["optimizer"]
        self.optimizer.load_state_dict(distributed.shard_optimizer_state(optimizer, self.optimizer)
                                       if self.config.fsdp else optimizer)
        self.sampler.load_state_dict(state["sampler"])
        saved_ranks = state.get("world_size", 1)
        rngs = state.get("rng_ranks", [state["rng"]])
        _set_rng_state(rngs[self.world.rank] if self.world.rank < len(rngs) else state["rng"], self.device)
        if saved_ranks != self.world.size:
            distributed.warn(self.world, f"note: {path} was saved by {saved_ranks} rank{'s' * (saved_ranks != 1)}, "
                                         f"resumed on {self.world.size}: the same global batches in the same order, "
                                         "but the losses match the uninterrupted run only to rounding (and dropout "
                                         "masks differ)")
        self.step, self.best_val, self.bad_evals = state["step"], state["best_val"], state["bad_evals"]
        self.last_val, self.last_val_step = state.get("last_val"), state.get("last_val_step", -1)
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.folder.resumed(path, self.step)

    # ---- the loop -------------------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        """A line for the person watching (stderr, above the progress bar); quiet without progress."""
        if self.config.progress and self.world.is_main:
            tqdm.write(message, file=sys.stderr)

    def _next_batch(self) -> Batch:
        batch = self.sampler.next_batch()
        if batch.input_ids.shape[1] > self.seq_len:
            raise TrainingError(f"a batch of {batch.input_ids.shape[1]} positions is longer than the run's "
                                f"{self.seq_len}; fit the examples to it (Example.fit)")
        return batch.to(self.device)

    @torch.no_grad()
    def evaluate(self) -> float:
        """The objective's loss per counted token over the validation batches (nan if none counts)."""
        self.objective.eval()
        total, count = 0.0, 0
        # with several ranks each scores its rows of every batch, through the wrapped module (FSDP
        # gathers the weights in its forward), and the totals are summed
        totals = self.module if self.world.grouped else self.objective.totals
        try:
            for batch in self.data.validation():
                with _autocast(self.config, self.device):
                    loss, n = totals(rows_of(batch, self.world).to(self.device))
                total, count = total + loss.item(), count + int(n)
        finally:
            self.objective.train()
        total, count = self.world.all_sum([total, count], self.device)
        return total / count if count else math.nan

    def sample(self) -> str:
        """A generated sample (rank 0; the others return "", having helped gather FSDP's weights)."""
        model = self._plain_model()
        if model is None or not self.world.is_main:
            return ""
        model.eval()
        try:
            result = complete(model, self.tokenizer, self.config.sample_prompt,
                              max_new_tokens=self.config.sample_tokens, temperature=0.8, top_k=40, seed=self.step)
        finally:
            model.train()
        return result[0].prompt + result[0].text

    def train_step(self) -> float:
        config = self.config
        lr = lr_at(self.step, config.schedule_steps or self.total_steps, self.steps_per_epoch, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum, self.step_tokens = 0.0, 0
        for micro in range(config.grad_accum):
            batch = self._next_batch()
            # gradients are reduced across ranks once per optimizer step, on its last micro-batch
            with gradient_sync(self.module, micro == config.grad_accum - 1):
                with _autocast(config, self.device):
                    # each micro-batch weighs the same, whatever number of tokens counts in it
                    loss = self._loss(batch) / config.grad_accum
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            loss_sum += loss.item()
            self.step_tokens += batch.num_tokens
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in self.objective.parameters() if p.requires_grad],
                                           config.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.world.grouped:  # the global batch's loss and tokens; a Ctrl-C on any rank stops them all here
            loss_sum, tokens, stops = self.world.all_sum([loss_sum, self.step_tokens, self.interrupted], self.device)
            loss_sum, self.step_tokens, self.stop_agreed = loss_sum / self.world.size, int(tokens), stops > 0
        return loss_sum

    def _loss(self, batch: Batch) -> torch.Tensor:
        """The objective's loss; with several ranks, this rank's part of the global batch's mean: its
        summed loss over the global count, times the ranks (which DDP and FSDP average over)."""
        if not self.world.grouped:
            return self.objective(batch)
        total, count = self.module(batch)
        counted = self.world.sum_tensor(count.to(torch.float64)).clamp(min=1)
        return total * (self.world.size / counted).to(total.dtype)

    def _stopping(self) -> bool:
        """Whether Ctrl-C asked to stop (on any rank, as all ranks agreed after the last step)."""
        return self.stop_agreed if self.world.grouped else self.interrupted

    def run(self) -> TrainResult:
        config, folder = self.config, self.folder
        # a run that had already stopped early before it was killed stays stopped
        stopped_early = bool(config.early_stopping_patience and self.bad_evals >= config.early_stopping_patience)
        if self.resumed_from is not None and (self.step >= self.total_steps or stopped_early) and \
                self.world.agree(folder.is_complete(self.step)):
            # nothing to train, save or write: the run is where it was left
            return TrainResult(config.out, self.step, folder.logged_loss(self.step), self.last_val, folder.model_dir,
                               0, stopped_early)
        folder.start(self.fingerprint)
        validating = self.data.validation is not None
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training",
                   disable=not (config.progress and self.world.is_main), dynamic_ncols=True)
        start_step, loss = self.step, math.nan
        with bar, self._interruptible(), distributed.collective("training"):
            while self.step < self.total_steps and not stopped_early:
                start = time.perf_counter()
                loss = self.train_step()
                seconds = time.perf_counter() - start
                record = {"step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch + 1, "loss": loss,
                          "lr": self.optimizer.param_groups[0]["lr"], "tokens_per_s": self.step_tokens / seconds}
                if validating and config.eval_every and self.step % config.eval_every == 0:
                    stopped_early = self._evaluate_into(record)
                if config.sample_every and self.step % config.sample_every == 0:
                    record["sample"] = self.sample()
                    if self.world.is_main:
                        bar.write(f"--- sample at step {self.step} ---\n{record['sample']}\n---")
                folder.log(record)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{record['lr']:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
                bar.update(1)
                if config.save_every and self.step % config.save_every == 0 and self.step < self.total_steps:
                    self._save()
                if self._stopping():
                    break
                if stopped_early and self.world.is_main:
                    bar.write(f"early stopping: no validation improvement in {config.early_stopping_patience} "
                              "evaluations")
                if stopped_early:
                    break
            interrupted = self._stopping()
            if not interrupted and validating and self.last_val_step != self.step:
                record = {"step": self.step}
                self._evaluate_into(record)
                folder.log(record)
        final = folder.checkpoint(self.step)
        if not self.world.agree(folder.has_checkpoint(self.step)):
            final = self._save()
        # saved where it stopped; the final model waits for the end of the run
        if interrupted or (not self.world.grouped and self.interrupted):
            folder.plot()
            raise TrainingInterrupted(self.step, self.total_steps, final)
        model = self._plain_model()
        if self.world.is_main:
            folder.write_final(model, self.tokenizer, self.step)
        folder.plot()
        self.world.barrier("finishing")  # the run is over for every rank once the final model is written
        if self.step == start_step:
            loss = folder.logged_loss(self.step)
        return TrainResult(config.out, self.step, loss, self.last_val, folder.model_dir, self.step - start_step,
                           stopped_early)

    def close(self) -> None:
        """Leave the process group (when torchrun started the run)."""
        distributed.leave(self.world)

    def _evaluate_into(self, record: dict) -> bool:
        val = self.evaluate()
        self.last_val, self.last_val_step = val, self.step
        record.update(val_loss=val, val_ppl=math.exp(min(val, 50)))
        self._say(f"step {self.step}: validation loss {val:.4f}, perplexity {record['val_ppl']:.2f}")
        if val < self.best_val:
            self.best_val, self.bad_evals = val, 0
        else:
            self.bad_evals += 1
        patience = self.config.early_stopping_patience
        return bool(patience and self.bad_evals >= patience)

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Ctrl-C (SIGINT) asks the loop to stop once the current step is complete, so that the
        checkpoint saved then resumes exactly; a second Ctrl-C stops at once, unsaved. Signals can
        only be caught in the main thread, and an ignored SIGINT (a background job) stays ignored."""
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
            yield
            return
        if self.world.grouped:  # torchrun stops the other ranks with SIGTERM when one fails: say so, in one line
            rank = self.world.rank

            def terminated(signum, frame) -> None:
                raise distributed.DistributedError(
                    f"rank {rank}: stopped by the launcher (torchrun stops every rank when one fails; that rank's "
                    "error is above); --resume continues from the last checkpoint")

            previous_term = signal.signal(signal.SIGTERM, terminated)

        def stop(signum, frame) -> None:
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True
            if self.config.progress:  # os.write: print() may be mid-call in the interrupted code
                os.write(sys.stderr.fileno(), b"\ninterrupted: stopping after this step to save a checkpoint "
                                              b"(Ctrl-C again to stop at once, without saving)\n")

        signal.signal(signal.SIGINT, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            if self.world.grouped:
                signal.signal(signal.SIGTERM, previous_term)


def _numel(p: torch.Tensor) -> int:
    """Elements of the whole parameter, of which FSDP holds a shard."""
    return math.prod(p.shape)


def finetune(config: TrainConfig) -> TrainResult:
    """Train as `config` says; see TrainConfig for every option."""
    trainer = Trainer(config)
    try:
        return trainer.run()
    finally:
        trainer.close()


__all__ = ["TrainResult", "Trainer", "TrainingInterrupted", "finetune"]
