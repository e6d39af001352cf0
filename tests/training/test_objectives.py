"""Objectives: the language-modeling loss of a model is the cross-entropy of its logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt2kit.data.batch import IGNORE_INDEX, Batch
from gpt2kit.training import LanguageModeling, lm_loss
from helpers import random_model


def test_language_modeling_is_the_cross_entropy_of_the_logits_on_labelled_positions():
    model = random_model()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50257, (2, 12), generator=gen)
    labels = torch.randint(0, 50257, (2, 12), generator=gen)
    labels[0, :5] = IGNORE_INDEX
    objective = LanguageModeling(model)
    with torch.no_grad():
        expected = F.cross_entropy(model(ids).flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        total, count = objective.totals(Batch(ids, labels))
        assert abs(objective(Batch(ids, labels)).item() - expected.item()) < 1e-4
        assert count.item() == 19 and abs(total.item() / 19 - expected.item()) < 1e-4
        assert lm_loss(model, ids, labels).item() == objective(Batch(ids, labels)).item()
    assert [n for n, _ in objective.named_parameters()] == [f"model.{n}" for n, _ in model.named_parameters()]
