"""Learning-rate schedules and optimizer groups."""

from __future__ import annotations

import pytest

from gpt2kit.errors import TrainingError
from gpt2kit.training import TrainConfig
from gpt2kit.training.schedule import lr_at, make_optimizer
from helpers import random_model


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"data": "x", "out": "y", "from_scratch": "tiny", "max_steps": 100, "base_lr": 1.0, **kw})


def test_warmup_then_cosine_and_linear():
    c = cfg(schedule="cosine", warmup_steps=10, min_lr=0.1)
    assert lr_at(0, 100, 10, c) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, c) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, c) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, c) == pytest.approx(0.55)
    assert lr_at(100, 100, 10, c) == pytest.approx(0.1)
    lin = cfg(schedule="linear")
    assert lr_at(50, 100, 10, lin) == pytest.approx(0.5)


def test_step_decay_at_epochs():
    c = cfg(schedule="step", decay_epochs=[4, 5], decay_factor=0.1)
    per_epoch = 10
    assert [round(lr_at(e * per_epoch, 100, per_epoch, c), 6) for e in range(6)] == [1, 1, 1, 0.1, 0.01, 0.01]


def test_weight_decay_on_matrices_only():
    opt = make_optimizer(random_model(), cfg(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() == 1 for p in no_decay["params"])


@pytest.mark.parametrize(
    "kw,message",
    [(dict(batch_size=0), "batch-size"), (dict(base_lr=-1), "learning rates"), (dict(schedule="exp"), "schedule"),
     (dict(max_steps=None), "--max-steps or --num-epochs"), (dict(from_scratch=None), "exactly one"),
     (dict(precision="fp8"), "precision"), (dict(val_fraction=1.5), "val-fraction")],
)
def test_invalid_options(kw, message):
    with pytest.raises(TrainingError, match=message):
        cfg(**kw)
