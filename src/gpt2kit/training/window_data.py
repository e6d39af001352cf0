"""A run's default data: random windows of TrainConfig.data, and how they read in the summary."""

from __future__ import annotations

from functools import partial

from gpt2kit.data.batch import TrainingData
from gpt2kit.data.dataset import WindowSampler, eval_windows, load_splits
from gpt2kit.data.shards import is_shard_folder
from gpt2kit.data.sources import scan
from gpt2kit.data.tokens import is_token_file
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training.config import TrainConfig


class WindowData(TrainingData):
    """Random windows of seq_len tokens of `config.data` for training; consecutive ones of the
    validation split (--val-fraction or --val-file) for evaluation."""

    def __init__(self, config: TrainConfig, tokenizer: Tokenizer, seq_len: int) -> None:
        self.config, self.seq_len = config, seq_len
        self.splits = load_splits(config.data, tokenizer, seq_len=seq_len, val_fraction=config.val_fraction,
                                  val_path=config.val_file, cache_dir=config.cache_dir, text_column=config.text_column,
                                  errors=config.errors, progress=config.progress)
        validation = None if self.splits.val is None else partial(eval_windows, self.splits.val, seq_len,
                                                                  config.batch_size, config.eval_batches)
        super().__init__(WindowSampler(self.splits.train, seq_len, config.batch_size, config.seed), validation,
                         str(config.data))

    def summary_lines(self, steps_per_epoch: int, grad_accum: int) -> list[tuple[str, str]]:
        config, seq_len = self.config, self.seq_len
        train, val = len(self.splits.train), (len(self.splits.val) if self.splits.val is not None else 0)
        data = f"{config.data}: {train:,} tokens for training"
        data += f", {val:,} for validation" if val else " (no validation)"
        if is_shard_folder(config.data):
            shards = len(self.splits.train.arrays)
            data += f"; {shards} shard{'s' * (shards != 1)} of a prepared corpus"
        elif config.data.is_dir():
            files, skipped = scan(config.data)
            data += f"; {len(files)} file{'s' * (len(files) != 1)}"
            if skipped:
                data += (f", {len(skipped)} symlink{'s' * (len(skipped) != 1)} to files or folders already read "
                         "skipped")
        elif is_token_file(config.data):
            data += " (a token file)"
        per_step = config.batch_size * grad_accum
        return [("data", data),
                ("windows", f"{steps_per_epoch * per_step:,} of {seq_len} tokens per epoch"),
                ("batch", f"{config.batch_size} x {grad_accum} accumulation x {seq_len} tokens = "
                          f"{per_step * seq_len:,} tokens per step")]
