"""Fine-tuning a language model on `label: text` lines: gpt2kit's own `finetune`, on a file written
into the run folder."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpt2kit.augmentation.lines import END_OF_LINE, training_line, write_training_lines
from gpt2kit.errors import AugmentationError
from gpt2kit.training import TrainConfig, finetune
from gpt2kit.training.trainer import TrainResult

LINES_FILE = "lines.jsonl"  # in the run folder: what the model was fine-tuned on


@dataclass(frozen=True)
class TuneSettings:
    steps: int = 100  # optimizer steps
    batch_size: int = 8  # windows per step
    seq_len: int | None = 128  # tokens per window; None: the model's context (the smaller of the two wins)
    lr: float = 1e-4
    seed: int = 0
    device: str = "auto"


def tune_on_lines(model: str, texts: Sequence[str], labels: Sequence[str], run_dir: Path,
                  settings: TuneSettings = TuneSettings(), *, name: str = "examples", progress: bool = True
                  ) -> TrainResult:
    """Fine-tune `model` on the examples as `label: text` documents. `run_dir` (new or empty) becomes
    an ordinary `gpt2kit finetune` run folder (metrics, loss curve, the final model in
    `run_dir / "model"`, reusable with `gpt2kit augment --steps 0`), with the lines it trained on
    in `run_dir / LINES_FILE`. `name` names the lines in the model's recorded origin."""
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise AugmentationError(f"{run_dir}: holds files already; give --run-dir a new or empty folder")
    with tempfile.TemporaryDirectory(prefix="gpt2kit-lines-") as scratch:
        # the lines and their token cache stay out of the run folder, which a run wants empty
        lines = write_training_lines(Path(scratch) / f"{name}.lines.jsonl", texts, labels)
        config = TrainConfig(data=lines, out=run_dir, model=model, max_steps=settings.steps,
                             batch_size=settings.batch_size, seq_len=_seq_len(model, settings.seq_len, texts, labels),
                             base_lr=settings.lr, seed=settings.seed, device=settings.device,
                             cache_dir=Path(scratch) / "tokens", progress=progress)
        result = finetune(config)
        shutil.copyfile(lines, run_dir / LINES_FILE)
    return result


def _seq_len(model: str, wanted: int | None, texts: Sequence[str], labels: Sequence[str]) -> int | None:
    """`wanted`, or less: the model's context, or what a small set holds (its lines joined by
    <|endoftext|> give `tokens - 1` tokens, and a window needs one more than its length). None keeps
    the model's context."""
    if wanted is None:
        return None
    from gpt2kit.tokenizer import Tokenizer
    from gpt2kit.weights import resolve_model_path
    from gpt2kit.weights.info import describe_model

    tokenizer = Tokenizer.for_model(resolve_model_path(model))
    lines = [training_line(label, text) + END_OF_LINE for text, label in zip(texts, labels, strict=True)]
    tokens = sum(len(ids) + 1 for ids in tokenizer.encode_batch(lines))
    return max(1, min(wanted, describe_model(model)["config"].n_positions, tokens - 2))
