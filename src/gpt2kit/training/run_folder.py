"""A run's folder: OUT/train_config.json, metrics.jsonl, checkpoints/, model/ and loss.png.

Which folder a run may use (--resume continues the run in it, --overwrite clears it once
the new run has set up without error, and otherwise a folder that holds files is refused);
the settings a resumed run must share with its checkpoint; the metrics and checkpoints a
run resumed from an older checkpoint replaces; checkpoints (written atomically by
training/checkpoints.py), the final model, the loss plot; and whether a resumed run has
nothing left to do.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch

from gpt2kit.atomic import atomic_write
from gpt2kit.errors import GPT2KitError, TrainingError
from gpt2kit.extras import MissingExtraError
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training import checkpoints as ckpt
from gpt2kit.training.config import TrainConfig
from gpt2kit.training.lora import merged_state
from gpt2kit.training.metrics import plot_losses, read_metrics

RESUME_MUST_MATCH = ("model", "from_scratch", "seq_len", "batch_size", "grad_accum", "seed", "lora_rank",
                     "freeze_layers", "precision", "task", "pooling")
RUN_FILES = ("checkpoints", "metrics.jsonl", "loss.png", "model", "train_config.json")


@contextlib.contextmanager
def writing(target: Path, what: str) -> Iterator[None]:
    """OS errors (a full disk, permissions) while writing `target` name it, not the temporary
    file or folder it is assembled in."""
    try:
        yield
    except OSError as err:
        raise TrainingError(f"{target}: could not write {what} ({err.strerror or err})") from None


class RunFolder:
    def __init__(self, config: TrainConfig, writer: bool = True) -> None:
        """Check that the run may use config.out; nothing is written before `start`, and nothing
        at all unless `writer` (with several ranks, rank 0 writes and the others only read)."""
        self.config, self.out, self.writer = config, config.out, writer
        self.metrics, self.model_dir = self.out / "metrics.jsonl", self.out / "model"
        self.stale_after: int | None = None  # resumed from an older checkpoint: the later ones go at saving
        self.plot_missing = False  # matplotlib (the plot extra) is not installed
        # what is saved of the trained GPT2 (the objective's `exported`: a classifier adds its head)
        self.export: Callable[[GPT2], torch.nn.Module] = lambda model: model
        if self.out.exists() and not self.out.is_dir():
            raise TrainingError(f"{self.out}: is a file, not a run folder")
        if not config.resume and not config.overwrite and self.out.exists() and any(self.out.iterdir()):
            raise TrainingError(f"{self.out}: already holds files (another run?); pass --resume to continue it or "
                                "--overwrite to start over")

    def describe(self) -> str:
        """The folder, for the run's summary: whether it (and how many parents) will be created."""
        if self.out.exists():
            return str(self.out)
        missing = [p for p in self.out.parents if not p.exists()]
        if not missing:
            return f"{self.out} (created)"
        return f"{self.out} (created, with {len(missing)} missing parent folder{'s' * (len(missing) != 1)})"

    def checkpoint(self, step: int) -> Path:
        return ckpt.checkpoint_dir(self.out) / f"{ckpt.PREFIX}{step:07d}"

    # ---- resuming -----------------------------------------------------------------------------------

    def checkpoints(self) -> list[Path]:
        """The run's complete checkpoints, oldest first (one moved aside by a killed save put back)."""
        ckpt.recover(self.out)
        return ckpt.list_checkpoints(self.out)

    def find_resume(self) -> Path:
        return ckpt.find_resume(self.out, self.config.resume)

    def load_resume(self, path: Path, world_size: int = 1) -> dict[str, Any]:
        """The trainer state saved in checkpoint `path`, once its run's settings are known to match
        (the batch: the global one, per-rank batch x ranks, so that a run may resume on other ranks)."""
        state = ckpt.load_state(path)
        saved = json.loads(state.get("config", "{}"))
        now = self.config.to_dict()
        saved_ranks = state.get("world_size", 1)
        if "batch_size" in saved and saved["batch_size"] * saved_ranks != now["batch_size"] * world_size and \
                saved_ranks != world_size:
            total = saved["batch_size"] * saved_ranks
            fix = (f"pass --batch-size {total // world_size}" if total % world_size == 0
                   else f"use a number of ranks that divides {total}")
            raise TrainingError(f"{path}: this run drew global batches of {total} ({saved_ranks} rank"
                                f"{'s' * (saved_ranks != 1)} x {saved['batch_size']}), not {now['batch_size']} x "
                                f"{world_size}; to continue it on {world_size} rank{'s' * (world_size != 1)}, {fix}")
        changed = [k for k in RESUME_MUST_MATCH if k in saved and saved[k] != now[k]
                   and not (k == "batch_size" and saved_ranks != world_size)]
        if changed:
            k = changed[0]
            raise TrainingError(f"{path}: this run used --{k.replace('_', '-')} {saved[k]!r}, not {now[k]!r}; resume "
                                "with the same settings")
        return state

    def resumed(self, path: Path, step: int) -> None:
        """Checkpoints and metrics written after checkpoint `path` (at `step`) are replaced by the
        resumed run's: the metrics now, the checkpoints only once it saves, so that they are not
        lost to a run that stops sooner."""
        if path.resolve().parent == ckpt.checkpoint_dir(self.out).resolve():
            self.stale_after = step
        if self.writer and self.metrics.is_file():
            kept = [json.dumps(r) + "\n" for r in read_metrics(self.metrics) if r.get("step", 0) <= step]
            atomic_write(self.metrics, "".join(kept))

    def is_complete(self, step: int) -> bool:
        """Whether this run's checkpoint of `step` and its final model are both written."""
        from gpt2kit.config import read_json
        from gpt2kit.weights.folder import METADATA_KEY

        saved = ckpt.list_checkpoints(self.out)
        written = self.model_dir / "config.json"
        if not saved or saved[-1] != self.checkpoint(step) or not written.is_file():  # not saved, or later ones to drop
            return False
        try:
            origin = read_json(written).get(METADATA_KEY, {}).get("origin", "")
        except (GPT2KitError, AttributeError):
            return False
        return origin.endswith(f", step {step}")

    def logged_loss(self, step: int) -> float:
        """The training loss metrics.jsonl holds for `step` (nan if none)."""
        rows = read_metrics(self.metrics) if self.metrics.is_file() else []
        return next((r["loss"] for r in reversed(rows) if r.get("step") == step and "loss" in r), math.nan)

    # ---- writing --------------------------------------------------------------------------------------

    def start(self, fingerprint: dict) -> None:
        """Make the folder (cleared first with --overwrite) and record the run's settings in it."""
        if not self.writer:
            return
        if self.config.overwrite and not self.config.resume:
            for name in RUN_FILES:
                target = self.out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.out.mkdir(parents=True, exist_ok=True)
        settings = self.out / "train_config.json"
        with writing(settings, "the run's settings"):
            atomic_write(settings, json.dumps({**self.config.to_dict(), "fingerprint": fingerprint}, indent=2) + "\n")

    def log(self, record: dict) -> None:
        if not self.writer:
            return
        with writing(self.metrics, "the metrics"), self.metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def has_checkpoint(self, step: int) -> bool:
        """Whether the checkpoint of `step` is written and this run has no later ones to replace."""
        return self.stale_after is None and self.checkpoint(step).is_dir()

    def save_checkpoint(self, step: int, model: GPT2, tokenizer: Tokenizer, state: dict[str, Any]) -> Path:
        """Checkpoint `step`: the model as a plain model folder, and the trainer `state` with the
        run's settings (which a resume checks)."""
        if self.stale_after is not None:
            dropped = ckpt.drop_after(self.out, self.stale_after)
            self.stale_after = None
            if dropped:
                print(f"resumed run: removed the checkpoints after the one it resumed from "
                      f"({', '.join(p.name for p in dropped)})", file=sys.stderr)
        state = {**state, "config": json.dumps(self.config.to_dict())}
        with writing(self.checkpoint(step), "the checkpoint"):
            return ckpt.save_checkpoint(self.out, step, partial(self._write_model, model, tokenizer, step), state,
                                        self.config.keep_last)

    def write_final(self, model: GPT2, tokenizer: Tokenizer, step: int) -> Path:
        from gpt2kit.weights.folder import atomic_folder

        with writing(self.model_dir, "the model"):
            return atomic_folder(self.model_dir, partial(self._write_model, model, tokenizer, step))

    def plot(self) -> None:
        """loss.png, or one line on stderr saying how to get it: a run never fails for its plot."""
        if self.plot_missing or not self.writer:
            return
        try:
            plot_losses(self.metrics, self.out / "loss.png")
        except MissingExtraError as err:
            self.plot_missing = True  # said once per run
            print(f"note: no loss.png: {err}", file=sys.stderr)

    def _write_model(self, model: GPT2, tokenizer: Tokenizer, step: int, folder: Path) -> None:
        """A plain model folder (LoRA adapters folded in) that names this run and step: `is_complete`
        reads the step back."""
        from gpt2kit.weights.folder import model_from_state, save_model

        with torch.no_grad():
            plain = model_from_state(model.config, {k: v.cpu() for k, v in merged_state(model).items()})
        save_model(self.export(plain), folder, tokenizer=tokenizer,
                   metadata={"origin": f"gpt2kit finetune on {self.config.data.name}, step {step}"})
