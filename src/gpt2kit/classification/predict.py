"""Texts -> class probabilities: tokenized, cut to the model's context, run in right-padded batches of
similar lengths (less padding), and returned in the order given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from gpt2kit.errors import GPT2KitError
from gpt2kit.model.classifier import GPT2Classifier
from gpt2kit.tokenizer import Tokenizer


@dataclass(frozen=True)
class Prediction:
    label: str  # the most probable class
    probs: dict[str, float]  # every class's probability, in the model's label order

    def to_dict(self) -> dict:
        return {"label": self.label, "probs": self.probs}


def check_classifier(model) -> GPT2Classifier:
    if not isinstance(model, GPT2Classifier):
        raise GPT2KitError("a language model without a classification head; fine-tune one with `gpt2kit finetune "
                           "--task classify --model M --data train.csv --out DIR`")
    if model.head.pooling == "token":
        raise GPT2KitError("a token classifier gives a label per token, not per text; classify runs sequence "
                           "classifiers (last-token or mean pooling)")
    return model


@torch.no_grad()
def classify(model: GPT2Classifier, tokenizer: Tokenizer, texts: Sequence[str], *, batch_size: int = 32,
             progress: bool = False) -> list[Prediction]:
    """The class of each text and the probabilities of all classes. A text longer than the model's
    context is cut to its first tokens, as training cuts it."""
    model = check_classifier(model)
    if batch_size < 1:
        raise GPT2KitError(f"batch size must be >= 1, got {batch_size}")
    context = model.config.n_positions
    ids = []
    for n, text in enumerate(texts, 1):
        tokens = tokenizer.encode(text)[:context]
        if not tokens:
            raise GPT2KitError(f"text {n} is empty: there is nothing to classify")
        ids.append(tokens)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # batches of similar lengths pad little
    probs = torch.empty(len(ids), len(model.labels))
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="classifying", unit="batch",
                          disable=not progress or len(order) <= batch_size, leave=False):
            rows = order[start:start + batch_size]
            width = max(len(ids[i]) for i in rows)
            batch = torch.full((len(rows), width), tokenizer.eot_id, dtype=torch.long)
            mask = torch.zeros(len(rows), width, dtype=torch.long)
            for r, i in enumerate(rows):
                batch[r, :len(ids[i])] = torch.tensor(ids[i])
                mask[r, :len(ids[i])] = 1
            logits = model(batch.to(model.device), attention_mask=mask.to(model.device))
            # fp32 softmax: bf16 logits would round the probabilities (and tie the argmax) far too often
            probs[rows] = logits.float().softmax(-1).cpu()
    finally:
        model.train(was_training)
    labels = model.labels
    return [Prediction(labels[int(p.argmax())], {label: float(x) for label, x in zip(labels, p.tolist(), strict=True)})
            for p in probs]
