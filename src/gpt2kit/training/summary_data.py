"""A summarization run's data: article/summary records as examples, the loss on the summary."""

from __future__ import annotations

from functools import partial

from gpt2kit.data.articles import read_articles
from gpt2kit.data.batch import TrainingData
from gpt2kit.data.examples import ExampleSampler, example_batches
from gpt2kit.errors import DataError
from gpt2kit.summarization.examples import summary_examples
from gpt2kit.summarization.recipes import recipe
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training.config import TrainConfig


class SummaryData(TrainingData):
    """Examples of `config.data` built by `config.recipe`, shuffled by epoch; validation on the last
    --val-fraction of the records or on --val-file, the first variant of each (the same every time)."""

    def __init__(self, config: TrainConfig, tokenizer: Tokenizer, seq_len: int) -> None:
        self.config, self.recipe = config, recipe(config.recipe, training=True)
        columns = dict(source_column=config.source_column, target_column=config.target_column, errors=config.errors)
        articles = read_articles(config.data, limit=config.limit, progress=config.progress, **columns)
        if config.val_file is not None:
            val = read_articles(config.val_file, progress=config.progress, **columns)
        elif config.val_fraction > 0:
            cut = int(len(articles) * (1 - config.val_fraction))
            articles, val = articles[:cut], articles[cut:]
            if not val or not articles:
                raise DataError(f"{config.data}: {len(articles) + len(val)} articles cannot be split by "
                                f"--val-fraction {config.val_fraction}")
        else:
            val = []
        build = partial(summary_examples, tokenizer=tokenizer, recipe=self.recipe, seq_len=seq_len,
                        loss_on=config.loss_on)
        self.train_examples = build(articles)
        self.val_examples = [variants[0] for variants in build(val)]
        if len(self.train_examples) < config.batch_size:
            raise DataError(f"{config.data}: {len(self.train_examples)} articles, fewer than one batch of "
                            f"--batch-size {config.batch_size}")
        validation = None
        if self.val_examples:
            validation = partial(example_batches, self.val_examples, config.batch_size, config.eval_batches)
        super().__init__(ExampleSampler(self.train_examples, config.batch_size, config.seed, pad_id=tokenizer.eot_id),
                         validation, str(config.data))

    def summary_lines(self, steps_per_epoch: int, grad_accum: int) -> list[tuple[str, str]]:
        config = self.config
        tokens = sum(len(v[0]) for v in self.train_examples)
        data = (f"{config.data}: {len(self.train_examples):,} articles for training, {tokens:,} tokens"
                + (f", {len(self.val_examples):,} for validation" if self.val_examples else " (no validation)"))
        per_step = config.batch_size * grad_accum
        return [("data", data),
                ("examples", f"recipe {self.recipe.name} ({self.recipe.separator!r} between article and summary), "
                             f"loss on {'the summary' if config.loss_on == 'target' else 'every token'}"),
                ("batch", f"{config.batch_size} x {grad_accum} accumulation = {per_step} examples per step, "
                          f"{steps_per_epoch * per_step:,} per epoch")]
