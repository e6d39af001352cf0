"""A classification run's data: labelled texts as examples (the text read, its class learnt), and the
objective that trains a head for their classes."""

from __future__ import annotations

import sys
from collections import Counter
from functools import partial

import numpy as np
import torch

from gpt2kit.data.batch import TrainingData
from gpt2kit.data.examples import Example, ExampleSampler, example_batches
from gpt2kit.data.labelled import LabelledSet, read_labelled
from gpt2kit.errors import DataError
from gpt2kit.model.classifier import ClassifierConfig, GPT2Classifier, new_head_note, new_score
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training.config import TrainConfig
from gpt2kit.training.objectives import Classification


def balanced_weights(labels: list[str], names: list[str]) -> torch.Tensor:
    """scikit-learn's "balanced" class weights, n / (classes x count of the class): each class weighs
    the same in the loss, and the weights of the examples average 1."""
    counts = Counter(labels)
    return torch.tensor([len(labels) / (len(names) * counts[name]) for name in names], dtype=torch.float32)


def check_classes(train: LabelledSet, others: LabelledSet | None = None) -> list[str]:
    """The classes of `train`, at least two; `others` (validation or test data) may hold no other."""
    names = train.label_names
    if len(names) < 2:
        raise DataError(f"{train.source}: the label column {train.label_column!r} holds one class ({names[0]!r}); "
                        "a classifier needs examples of at least two")
    if others is not None:
        unseen = sorted(set(others.labels) - set(names))
        if unseen:
            raise DataError(f"{others.source}: label{'s' * (len(unseen) > 1)} {', '.join(map(repr, unseen))} "
                            f"never seen in training (the classes are {', '.join(names)})")
    return names


class ClassificationData(TrainingData):
    """Labelled texts of `config.data` (.csv, .jsonl or a folder per class), shuffled by epoch;
    validation on --val-file or on --val-fraction of the examples (drawn at random by the seed: files
    are often sorted by class)."""

    def __init__(self, config: TrainConfig, tokenizer: Tokenizer, seq_len: int) -> None:
        self.config = config
        columns = dict(text_column=config.text_column, label_column=config.label_column)
        train = read_labelled(config.data, **columns)
        if config.val_file is not None:
            val: LabelledSet | None = read_labelled(config.val_file, **columns)
        elif config.val_fraction > 0:
            order = np.random.default_rng(config.seed).permutation(len(train))
            cut = int(len(train) * (1 - config.val_fraction))
            if cut == 0 or cut == len(train):
                raise DataError(f"{config.data}: {len(train)} examples cannot be split by --val-fraction "
                                f"{config.val_fraction}")
            pick = lambda rows: LabelledSet([train.texts[i] for i in rows], [train.labels[i] for i in rows],  # noqa: E731
                                            train.source, train.text_column, train.label_column)
            train, val = pick(order[:cut]), pick(order[cut:])
        else:
            val = None
        self.names = check_classes(train, val)
        self.train_labels = train.labels
        ids = {name: i for i, name in enumerate(self.names)}

        def examples(data: LabelledSet) -> list[Example]:
            return [Example.source_target(tokenizer.encode(text), [ids[label]]).fit(seq_len)
                    for text, label in zip(data.texts, data.labels, strict=True)]

        self.train_examples = examples(train)
        self.val_examples = examples(val) if val is not None else []
        if len(self.train_examples) < config.batch_size:
            raise DataError(f"{config.data}: {len(self.train_examples)} examples, fewer than one batch of "
                            f"--batch-size {config.batch_size}")
        validation = None
        if self.val_examples:
            validation = partial(example_batches, self.val_examples, config.batch_size, config.eval_batches,
                                 pad_id=tokenizer.eot_id)
        super().__init__(ExampleSampler(self.train_examples, config.batch_size, config.seed, pad_id=tokenizer.eot_id),
                         validation, str(config.data))

    def objective(self, model: GPT2, *, start: GPT2Classifier | None = None, where: str = "the model",
                  say: bool = True) -> Classification:
        """The objective training `model` on these classes: the head of `start` (a classifier being
        fine-tuned further) when it has the same classes, else a new one, which is said on stderr
        (unless not `say`: a resumed run reads its trained head next)."""
        head = ClassifierConfig(tuple(self.names), self.config.pooling, pad_token_id=model.config.eos_token_id)
        weights = balanced_weights(self.train_labels, self.names) if self.config.class_weights == "balanced" else None
        if start is not None and list(start.labels) == self.names and start.head.pooling == head.pooling:
            return Classification(model, start.head, start.score, weights)
        if say:
            print(new_head_note(where, head), file=sys.stderr)
        return Classification(model, head, new_score(model.config, head, device=model.device, seed=self.config.seed),
                              weights)

    def summary_lines(self, steps_per_epoch: int, grad_accum: int) -> list[tuple[str, str]]:
        config = self.config
        counts = Counter(self.train_labels)
        tokens = sum(len(e) - 1 for e in self.train_examples)
        data = (f"{config.data}: {len(self.train_examples):,} examples for training, {tokens:,} tokens"
                + (f", {len(self.val_examples):,} for validation" if self.val_examples else " (no validation)"))
        classes = ", ".join(f"{name} {counts[name]:,}" for name in self.names)
        pooled = "last-token" if config.pooling == "last" else config.pooling
        weighting = "balanced class weights" if config.class_weights == "balanced" else "unweighted"
        per_step = config.batch_size * grad_accum
        return [("data", data),
                ("classes", f"{len(self.names)}: {classes}; {pooled} pooling, {weighting} loss"),
                ("batch", f"{config.batch_size} x {grad_accum} accumulation = {per_step} examples per step, "
                          f"{steps_per_epoch * per_step:,} per epoch")]
