"""The fine-tuning loop: files -> dataset -> trainer -> checkpoint.

`finetune(TrainConfig)` trains and returns a summary; `gpt2kit finetune` is a thin
wrapper. Every optimizer step draws `grad_accum` batches of random windows, clips the
gradient norm, steps AdamW at the schedule's learning rate, and appends a line to
metrics.jsonl. A run killed at any point resumes from its latest checkpoint and
continues with the same losses it would have had (bitwise on CPU). Ctrl-C stops after
the current step, saves a checkpoint and raises `TrainingInterrupted`.

A run may be resumed with another --max-steps (or --num-epochs): it continues to the new
total, and the learning-rate schedule (warmup, linear or cosine decay) from then on is the
one of the new total. Resuming a run that has already reached its total does nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gpt2kit.atomic import atomic_write
from gpt2kit.data.dataset import WindowSampler, eval_windows, load_splits
from gpt2kit.data.sources import scan
from gpt2kit.data.tokens import is_token_file
from gpt2kit.devices import resolve_device, slow_dtype_warning
from gpt2kit.errors import GPT2KitError, TrainingError
from gpt2kit.generation import complete
from gpt2kit.host_memory import keep_freed_memory
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training import checkpoints as ckpt
from gpt2kit.training.config import TrainConfig
from gpt2kit.training.lora import LoRALinear, add_lora, has_lora
from gpt2kit.training.loss import linear_cross_entropy
from gpt2kit.training.metrics import plot_losses, read_metrics
from gpt2kit.training.reproducibility import differences, fingerprint, reproducible_math
from gpt2kit.training.schedule import lr_at, make_optimizer


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


@contextlib.contextmanager
def _writing(target: Path, what: str) -> Iterator[None]:
    """OS errors (a full disk, permissions) while writing `target` name it, not the temporary
    file or folder it is assembled in."""
    try:
        yield
    except OSError as err:
        raise TrainingError(f"{target}: could not write {what} ({err.strerror or err})") from None


def lm_loss(model: GPT2, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of `model` on inputs x and targets y (B, T)."""
    return linear_cross_entropy(model.hidden_states(x), model.head_weight, y)


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


RESUME_MUST_MATCH = ("model", "from_scratch", "seq_len", "batch_size", "grad_accum", "seed", "lora_rank",
                     "freeze_layers", "precision")


def _check_out(config: TrainConfig) -> None:
    out = config.out
    if out.exists() and not out.is_dir():
        raise TrainingError(f"{out}: is a file, not a run folder")
    if config.resume:
        return
    taken = out.exists() and any(out.iterdir())
    if taken and not config.overwrite:
        raise TrainingError(f"{out}: already holds files (another run?); pass --resume to continue it or "
                            "--overwrite to start over")


def _clear_run(out: Path) -> None:
    """--overwrite: remove the previous run's files (only once the new run has set up without error)."""
    if out.is_dir():
        for name in ("checkpoints", "metrics.jsonl", "loss.png", "model", "train_config.json"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":  # before MKL's first call: its mode is fixed from then on
            reproducible_math()
        if config.precision == "fp16" and self.device.type != "cuda":
            raise TrainingError("fp16 training needs CUDA (it relies on a gradient scaler); use --precision bf16")
        if config.precision != "fp32" and (warning := slow_dtype_warning(_half(config), self.device,
                                                                          "--precision fp32")):
            print(warning, file=sys.stderr)
        _check_out(config)
        if self.device.type == "cpu":  # faster steps for some held memory, unless memory comes first
            keep_freed_memory(default=not config.grad_checkpointing)
        torch.manual_seed(config.seed)
        if config.from_scratch:
            self.model = GPT2.from_config(config.from_scratch, seed=config.seed)
            self.tokenizer = Tokenizer.from_pretrained()
        else:
            from gpt2kit.weights import read_model

            self.model, source = read_model(config.model)
            self.tokenizer = Tokenizer.for_model(source.path)
        ctx = self.model.config.n_positions
        self.seq_len = config.seq_len or ctx
        if self.seq_len > ctx:
            raise TrainingError(f"seq-len {self.seq_len} is larger than the model's context of {ctx}")
        self.splits = load_splits(config.data, self.tokenizer, seq_len=self.seq_len, val_fraction=config.val_fraction,
                                  val_path=config.val_file, cache_dir=config.cache_dir, text_column=config.text_column,
                                  errors=config.errors, progress=config.progress)
        self._prepare_model()
        self.optimizer = make_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        tokens_per_step = self.seq_len * config.batch_size * config.grad_accum
        self.steps_per_epoch = config.steps_per_epoch or max(1, len(self.splits.train) // tokens_per_step)
        limits = [n for n in (config.max_steps,) if n]
        if config.num_epochs:
            limits.append(config.num_epochs * self.steps_per_epoch)
        self.total_steps = min(limits)
        self.sampler = WindowSampler(self.splits.train, self.seq_len, config.batch_size, config.seed)
        self.step = 0
        self.best_val = math.inf
        self.bad_evals = 0
        self.last_val: float | None = None
        self.last_val_step = -1
        self.stale_after: int | None = None  # resumed from an older checkpoint of this run: later ones go at saving
        self.fingerprint = fingerprint(self.device)
        self.interrupted = False  # set by Ctrl-C: stop after the current step
        self.resumed_from: Path | None = None
        if config.resume:
            self.resumed_from = ckpt.find_resume(config.out, config.resume)
            self._resume(self.resumed_from)

    def summary(self) -> str:
        """What the run is about to do, one line per fact, for a reader about to wait for it."""
        config, model = self.config, self.model
        params = sum(p.numel() for p in model.parameters())
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        name = config.model if config.model else f"{config.from_scratch}, random weights (seed {config.seed})"
        train, val = len(self.splits.train), (len(self.splits.val) if self.splits.val is not None else 0)
        data = f"{config.data}: {train:,} tokens for training"
        data += f", {val:,} for validation" if val else " (no validation)"
        if config.data.is_dir():
            files, skipped = scan(config.data)
            data += f"; {len(files)} file{'s' * (len(files) != 1)}"
            if skipped:
                data += (f", {len(skipped)} symlink{'s' * (len(skipped) != 1)} to files or folders already read "
                         "skipped")
        elif is_token_file(config.data):
            data += " (a token file)"
        per_step = config.batch_size * config.grad_accum
        steps = f"{self.total_steps:,} ({self.total_steps / self.steps_per_epoch:,.2f} epochs)"
        if self.resumed_from is not None:
            steps += f", resuming at step {self.step:,} from {self.resumed_from}"
        out = str(config.out)
        if not config.out.exists():
            missing = [p for p in config.out.parents if not p.exists()]
            out += f" (created, with {len(missing)} missing parent folder{'s' * (len(missing) != 1)})" if missing \
                else " (created)"
        lines = [
            ("model", name),
            ("parameters", f"{params:,}" + (f" ({trained:,} trained)" if trained != params else "")),
            ("data", data),
            ("windows", f"{self.steps_per_epoch * per_step:,} of {self.seq_len} tokens per epoch"),
            ("batch", f"{config.batch_size} x {config.grad_accum} accumulation x {self.seq_len} tokens = "
                      f"{per_step * self.seq_len:,} tokens per step"),
            ("steps", steps),
            ("device", f"{self.device}, {config.precision}"),
            ("output", out),
        ]
        return "\n".join(f"{label:<12}{value}" for label, value in lines)

    # ---- set-up -------------------------------------------------------------------------------------

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

    def _adapters(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu() for n, p in self.model.named_parameters() if "lora_" in n}

    def _plain_state(self) -> dict[str, torch.Tensor]:
        """The model's weights as a plain GPT2 state dict, adapters folded in (without touching them)."""
        state = {}
        for name, module in self.model.named_modules():
            if isinstance(module, LoRALinear):
                delta = (module.lora_b @ module.lora_a) * module.scale
                state[f"{name}.weight"] = (module.base.weight + delta).detach()
                state[f"{name}.bias"] = module.base.bias.detach()
        for name, tensor in self.model.state_dict().items():
            plain = name.replace(".base.", ".")
            if "lora_" not in name and plain not in state:
                state[plain] = tensor
        return state

    def _write_model(self, folder: Path) -> None:
        from gpt2kit.weights.folder import model_from_state, save_model

        with torch.no_grad():
            plain = model_from_state(self.model.config, {k: v.cpu() for k, v in self._plain_state().items()})
        save_model(plain, folder, tokenizer=self.tokenizer,
                   metadata={"origin": f"gpt2kit finetune on {self.config.data.name}, step {self.step}"})

    def _resume(self, path: Path) -> None:
        state = ckpt.load_state(path)
        saved = json.loads(state.get("config", "{}"))
        now = self.config.to_dict()
        changed = [k for k in RESUME_MUST_MATCH if k in saved and saved[k] != now[k]]
        if changed:
            k = changed[0]
            raise TrainingError(f"{path}: this run used --{k.replace('_', '-')} {saved[k]!r}, not {now[k]!r}; resume "
                                "with the same settings")
        if state.get("lora") and not has_lora(self.model):
            raise TrainingError(f"{path}: was trained with LoRA; resume with the same --lora-rank")
        if state.get("lora"):
            missing = self.model.load_state_dict(state["adapters"], strict=False).unexpected_keys
            if missing:
                raise TrainingError(f"{path}: adapters do not fit this model")
        else:
            weights = GPT2.from_pretrained(path).state_dict()
            with torch.no_grad():
                for name, p in self.model.state_dict().items():
                    p.copy_(weights[name])
        changed = differences(state.get("fingerprint", {}), self.fingerprint)
        if changed:
            print(f"warning: {path} was saved under other conditions ({'; '.join(changed)}); the resumed run "
                  "continues, but its losses match an uninterrupted run only to rounding", file=sys.stderr)
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"], self.device)
        self.step, self.best_val, self.bad_evals = state["step"], state["best_val"], state["bad_evals"]
        self.last_val, self.last_val_step = state.get("last_val"), state.get("last_val_step", -1)
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        # checkpoints and metrics written after this checkpoint are replaced by the resumed run's;
        # the checkpoints only once it saves, so that they are not lost to a run that stops sooner
        if path.resolve().parent == ckpt.checkpoint_dir(self.config.out).resolve():
            self.stale_after = self.step
        metrics = self.config.out / "metrics.jsonl"
        if metrics.is_file():
            kept = [json.dumps(r) + "\n" for r in read_metrics(metrics) if r.get("step", 0) <= self.step]
            atomic_write(metrics, "".join(kept))

    def _save(self) -> Path:
        if self.stale_after is not None:
            dropped = ckpt.drop_after(self.config.out, self.stale_after)
            self.stale_after = None
            if dropped:
                print(f"resumed run: removed the checkpoints after the one it resumed from "
                      f"({', '.join(p.name for p in dropped)})", file=sys.stderr)
        state = {
            "step": self.step, "best_val": self.best_val, "bad_evals": self.bad_evals,
            "last_val": self.last_val, "last_val_step": self.last_val_step,
            "optimizer": self.optimizer.state_dict(), "sampler": self.sampler.state_dict(),
            "rng": _rng_state(self.device), "lora": has_lora(self.model), "adapters": self._adapters(),
            "config": json.dumps(self.config.to_dict()), "fingerprint": self.fingerprint,
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        final = ckpt.checkpoint_dir(self.config.out) / f"{ckpt.PREFIX}{self.step:07d}"
        with _writing(final, "the checkpoint"):
            return ckpt.save_checkpoint(self.config.out, self.step, self._write_model, state, self.config.keep_last)

    # ---- the loop -------------------------------------------------------------------------------------

    def _log(self, record: dict) -> None:
        metrics = self.config.out / "metrics.jsonl"
        with _writing(metrics, "the metrics"), metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def _say(self, message: str) -> None:
        """A line for the person watching (stderr, above the progress bar); quiet without progress."""
        if self.config.progress:
            tqdm.write(message, file=sys.stderr)

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        total, n = 0.0, 0
        for x, y in eval_windows(self.splits.val, self.seq_len, self.config.batch_size, self.config.eval_batches):
            with _autocast(self.config, self.device):
                total += lm_loss(self.model, x.to(self.device), y.to(self.device)).item() * y.numel()
            n += y.numel()
        self.model.train()
        return total / n

    def sample(self) -> str:
        self.model.eval()
        try:
            result = complete(self.model, self.tokenizer, self.config.sample_prompt,
                              max_new_tokens=self.config.sample_tokens, temperature=0.8, top_k=40, seed=self.step)
        finally:
            self.model.train()
        return result[0].prompt + result[0].text

    def train_step(self) -> float:
        config = self.config
        lr = lr_at(self.step, config.schedule_steps or self.total_steps, self.steps_per_epoch, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for _ in range(config.grad_accum):
            x, y = self.sampler.next_batch()
            with _autocast(config, self.device):
                loss = lm_loss(self.model, x.to(self.device), y.to(self.device)) / config.grad_accum
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            loss_sum += loss.item()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], config.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_sum

    def run(self) -> TrainResult:
        config = self.config
        model_dir = config.out / "model"
        # a run that had already stopped early before it was killed stays stopped
        stopped_early = bool(config.early_stopping_patience and self.bad_evals >= config.early_stopping_patience)
        if self.resumed_from is not None and (self.step >= self.total_steps or stopped_early) and self._complete():
            # nothing to train, save or write: the run is where it was left
            return TrainResult(config.out, self.step, self._logged_loss(), self.last_val, model_dir, 0, stopped_early)
        if config.overwrite and not config.resume:
            _clear_run(config.out)
        config.out.mkdir(parents=True, exist_ok=True)
        with _writing(config.out / "train_config.json", "the run's settings"):
            atomic_write(config.out / "train_config.json",
                         json.dumps({**config.to_dict(), "fingerprint": self.fingerprint}, indent=2) + "\n")
        tokens_per_step = self.seq_len * config.batch_size * config.grad_accum
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", disable=not config.progress,
                   dynamic_ncols=True)
        start_step, loss = self.step, math.nan
        with bar, self._interruptible():
            while self.step < self.total_steps and not stopped_early:
                start = time.perf_counter()
                loss = self.train_step()
                seconds = time.perf_counter() - start
                record = {"step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch + 1, "loss": loss,
                          "lr": self.optimizer.param_groups[0]["lr"], "tokens_per_s": tokens_per_step / seconds}
                if self.splits.val is not None and config.eval_every and self.step % config.eval_every == 0:
                    stopped_early = self._evaluate_into(record)
                if config.sample_every and self.step % config.sample_every == 0:
                    record["sample"] = self.sample()
                    bar.write(f"--- sample at step {self.step} ---\n{record['sample']}\n---")
                self._log(record)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{record['lr']:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
                bar.update(1)
                if config.save_every and self.step % config.save_every == 0 and self.step < self.total_steps:
                    self._save()
                if self.interrupted:
                    break
                if stopped_early:
                    bar.write(f"early stopping: no validation improvement in {config.early_stopping_patience} "
                              "evaluations")
                    break
            if not self.interrupted and self.splits.val is not None and self.last_val_step != self.step:
                record = {"step": self.step}
                self._evaluate_into(record)
                self._log(record)
        final = ckpt.checkpoint_dir(config.out) / f"{ckpt.PREFIX}{self.step:07d}"
        if self.stale_after is not None or not final.is_dir():
            final = self._save()
        if self.interrupted:  # saved where it stopped; the final model waits for the end of the run
            plot_losses(config.out / "metrics.jsonl", config.out / "loss.png")
            raise TrainingInterrupted(self.step, self.total_steps, final)
        with _writing(model_dir, "the model"):
            self._write_final(model_dir)
        plot_losses(config.out / "metrics.jsonl", config.out / "loss.png")
        if self.step == start_step:
            loss = self._logged_loss()
        return TrainResult(config.out, self.step, loss, self.last_val, model_dir, self.step - start_step,
                           stopped_early)

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Ctrl-C (SIGINT) asks the loop to stop once the current step is complete, so that the
        checkpoint saved then resumes exactly; a second Ctrl-C stops at once, unsaved. Signals can
        only be caught in the main thread, and an ignored SIGINT (a background job) stays ignored."""
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
            yield
            return

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

    def _complete(self) -> bool:
        """Whether this run's checkpoint of the current step and its final model are both written."""
        from gpt2kit.config import read_json
        from gpt2kit.weights.folder import METADATA_KEY

        saved = ckpt.list_checkpoints(self.config.out)
        final = ckpt.checkpoint_dir(self.config.out) / f"{ckpt.PREFIX}{self.step:07d}"
        written = self.config.out / "model" / "config.json"
        if not saved or saved[-1] != final or not written.is_file():  # not saved, or later ones to drop
            return False
        try:
            origin = read_json(written).get(METADATA_KEY, {}).get("origin", "")
        except (GPT2KitError, AttributeError):
            return False
        return origin.endswith(f", step {self.step}")

    def _logged_loss(self) -> float:
        """The training loss metrics.jsonl holds for the current step (nan if none)."""
        metrics = self.config.out / "metrics.jsonl"
        rows = read_metrics(metrics) if metrics.is_file() else []
        return next((r["loss"] for r in reversed(rows) if r.get("step") == self.step and "loss" in r), math.nan)

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

    def _write_final(self, folder: Path) -> None:
        from gpt2kit.weights.folder import atomic_folder

        atomic_folder(folder, self._write_model)


def finetune(config: TrainConfig) -> TrainResult:
    """Train as `config` says; see TrainConfig for every option."""
    return Trainer(config).run()


__all__ = ["TrainResult", "Trainer", "TrainingInterrupted", "finetune", "lm_loss"]
