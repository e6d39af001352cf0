"""The fine-tuning loop: files -> dataset -> trainer -> checkpoint.

`finetune(TrainConfig)` trains and returns a summary; `gpt2kit finetune` is a thin
wrapper. Every optimizer step draws `grad_accum` batches of random windows, clips the
gradient norm, steps AdamW at the schedule's learning rate, and appends a line to
metrics.jsonl. A run killed at any point resumes from its latest checkpoint and
continues with the same losses it would have had (bitwise on CPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gpt2kit.atomic import atomic_write
from gpt2kit.data.dataset import WindowSampler, eval_windows, load_splits
from gpt2kit.devices import resolve_device
from gpt2kit.errors import TrainingError
from gpt2kit.generation import complete
from gpt2kit.host_memory import keep_freed_memory
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training import checkpoints as ckpt
from gpt2kit.training.config import TrainConfig
from gpt2kit.training.lora import LoRALinear, add_lora, has_lora
from gpt2kit.training.loss import linear_cross_entropy
from gpt2kit.training.reproducibility import differences, fingerprint, reproducible_math
from gpt2kit.training.schedule import lr_at, make_optimizer


@dataclass
class TrainResult:
    out: Path
    steps: int
    train_loss: float
    val_loss: float | None
    model_dir: Path


def lm_loss(model: GPT2, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of `model` on inputs x and targets y (B, T)."""
    return linear_cross_entropy(model.hidden_states(x), model.head_weight, y)


def _autocast(config: TrainConfig, device: torch.device):
    if config.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


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
        _check_out(config)
        if self.device.type == "cpu":  # faster steps for some held memory, unless memory comes first
            keep_freed_memory(default=not config.grad_checkpointing)
        torch.manual_seed(config.seed)
        if config.from_scratch:
            self.model = GPT2.from_config(config.from_scratch, seed=config.seed)
            self.tokenizer = Tokenizer.from_pretrained()
        else:
            self.model = GPT2.from_pretrained(config.model)
            self.tokenizer = Tokenizer.for_model(self.model.source)
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
        if config.resume:
            self._resume(ckpt.find_resume(config.out, config.resume))

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
        return ckpt.save_checkpoint(self.config.out, self.step, self._write_model, state, self.config.keep_last)

    # ---- the loop -------------------------------------------------------------------------------------

    def _log(self, record: dict) -> None:
        with (self.config.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")

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
        lr = lr_at(self.step, self.total_steps, self.steps_per_epoch, config)
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
        if config.overwrite and not config.resume:
            _clear_run(config.out)
        config.out.mkdir(parents=True, exist_ok=True)
        atomic_write(config.out / "train_config.json",
                     json.dumps({**config.to_dict(), "fingerprint": self.fingerprint}, indent=2) + "\n")
        tokens_per_step = self.seq_len * config.batch_size * config.grad_accum
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", disable=not config.progress,
                   dynamic_ncols=True)
        loss = math.nan
        # a run that had already stopped early before it was killed stays stopped
        stopped_early = bool(config.early_stopping_patience and self.bad_evals >= config.early_stopping_patience)
        with bar:
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
                if stopped_early:
                    bar.write(f"early stopping: no validation improvement in {config.early_stopping_patience} "
                              "evaluations")
                    break
        if self.splits.val is not None and self.last_val_step != self.step:
            record = {"step": self.step}
            self._evaluate_into(record)
            self._log(record)
        final = ckpt.checkpoint_dir(config.out) / f"{ckpt.PREFIX}{self.step:07d}"
        if self.stale_after is not None or not final.is_dir():
            self._save()
        model_dir = config.out / "model"
        self._write_final(model_dir)
        plot_losses(config.out / "metrics.jsonl", config.out / "loss.png")
        return TrainResult(config.out, self.step, loss, self.last_val, model_dir)

    def _evaluate_into(self, record: dict) -> bool:
        val = self.evaluate()
        self.last_val, self.last_val_step = val, self.step
        record.update(val_loss=val, val_ppl=math.exp(min(val, 50)))
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


def read_metrics(path: Path) -> list[dict]:
    """The records of metrics.jsonl; a line cut short by a kill is passed over."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_losses(metrics: Path, out: Path) -> Path | None:
    """Training (and validation) loss against step, as a PNG; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = read_metrics(metrics) if metrics.is_file() else []
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


__all__ = ["TrainResult", "Trainer", "finetune", "lm_loss"]
