"""The usual guard against drift: keep a generated text only if a classifier assigns it to the
label it was generated for."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from gpt2kit.augmentation.augment import Keep
from gpt2kit.backends import load
from gpt2kit.classification.predict import check_classifier, classify
from gpt2kit.errors import AugmentationError
from gpt2kit.model.classifier import GPT2Classifier
from gpt2kit.tokenizer import Tokenizer


def classifier_keep(model: GPT2Classifier, tokenizer: Tokenizer, labels: Sequence[str], *, batch_size: int = 32,
                    name: str = "the classifier") -> Keep:
    """`keep(texts, label)` for `augment`: whether `model` predicts `label` for each text. Every label
    to augment (`labels`) must be one of the classifier's, or it could never keep one."""
    model = check_classifier(model)
    unknown = [label for label in labels if label not in model.labels]
    if unknown:
        raise AugmentationError(f"{name}: a classifier of {', '.join(model.labels)}, which cannot keep examples of "
                                f"{', '.join(unknown)}; give --filter a classifier trained on the data's labels")

    def keep(texts: list[str], label: str) -> list[bool]:
        return [p.label == label for p in classify(model, tokenizer, texts, batch_size=batch_size)]

    return keep


def load_filter(name_or_path: str, labels: Sequence[str], *, device: str = "auto",
                dtype: torch.dtype = torch.float32, batch_size: int = 32) -> Keep:
    """`classifier_keep` of the classifier at `name_or_path` (a `gpt2kit finetune --task classify`
    model, or transformers' GPT2ForSequenceClassification folder); a language model is refused."""
    loaded = load(name_or_path, device=device, dtype=dtype)
    loaded.require_task("classify")
    for line in loaded.notes(fp32="--dtype fp32"):
        print(line, file=sys.stderr)
    return classifier_keep(loaded.model, loaded.tokenizer, labels, batch_size=batch_size, name=str(name_or_path))
