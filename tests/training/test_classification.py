"""Classification through the shared trainer: a tiny model learns a separable set to 100%, its loss is
transformers' on the same weights, it resumes exactly, trains with LoRA in bf16, and bad labels are one line."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from gpt2kit.classification import classify
from gpt2kit.data.labelled import LabelledSet, write_labelled
from gpt2kit.errors import DataError
from gpt2kit.model import GPT2Classifier
from gpt2kit.training import TrainConfig, Trainer
from gpt2kit.training.classification_data import balanced_weights

# each class has its own words: a text's class is in every one of its tokens
WORDS = {"sea": "fish whale wave salt tide ship", "land": "tree hill stone field wheat road",
         "sky": "bird cloud star moon wind rain"}


def separable(n: int, seed: int, classes=WORDS) -> LabelledSet:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = list(classes)[i % len(classes)]
        texts.append(" ".join(rng.choices(classes[label].split(), k=rng.randint(2, 9))))
        labels.append(label)
    return LabelledSet(texts, labels, "fixture")


def settings(tmp_path, **overrides) -> dict:
    write_labelled(tmp_path / "train.csv", separable(48, seed=0))
    base = dict(data=tmp_path / "train.csv", out=tmp_path / "run", from_scratch="tiny", task="classify",
                batch_size=8, max_steps=14, base_lr=3e-3, dropout=0.0, progress=False)
    return {**base, **overrides}


def losses(out) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_a_tiny_classifier_learns_a_separable_set(tmp_path):
    write_labelled(tmp_path / "val.jsonl", separable(30, seed=1))
    trainer = Trainer(TrainConfig(**settings(tmp_path, val_file=tmp_path / "val.jsonl")))
    assert "3: land 16, sea 16, sky 16; last-token pooling, unweighted loss" in trainer.summary()
    result = trainer.run()
    model = GPT2Classifier.from_pretrained(result.model_dir)
    assert model.labels == ("land", "sea", "sky")
    test = separable(60, seed=2)
    predicted = [p.label for p in classify(model, trainer.tokenizer, test.texts, batch_size=7)]
    assert predicted == test.labels  # 100%
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["architectures"] == ["GPT2ForSequenceClassification"]
    assert config["id2label"] == {"0": "land", "1": "sea", "2": "sky"}


def test_the_loss_is_transformers_cross_entropy(tmp_path):
    transformers = pytest.importorskip("transformers")
    trainer = Trainer(TrainConfig(**settings(tmp_path, seed=4)))
    batch = trainer.data.train.next_batch()
    trainer.objective.eval()
    trainer.objective.exported(trainer.model).save_pretrained(tmp_path / "saved")
    hf = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    classes = batch.labels.max(1).values  # each row's one counted label is its class
    with torch.no_grad():
        # transformers finds each row's last text token from the padding id (right padding, as here)
        torch.testing.assert_close(trainer.objective(batch), hf(batch.input_ids, labels=classes).loss, rtol=0,
                                   atol=1e-5)


def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    labels = ["a"] * 7 + ["b"] * 2 + ["c"]
    expected = compute_class_weight("balanced", classes=np.array(["a", "b", "c"]), y=labels)
    torch.testing.assert_close(balanced_weights(labels, ["a", "b", "c"]), torch.tensor(expected, dtype=torch.float32))


def test_resume_continues_exactly_with_lora_in_bf16(tmp_path):
    common = dict(max_steps=4, save_every=2, keep_last=3, lora_rank=2, precision="bf16", class_weights="balanced",
                  pooling="mean")
    whole = Trainer(TrainConfig(**settings(tmp_path, **common))).run()
    expected = losses(whole.out)
    resumed_out = tmp_path / "resumed"
    Trainer(TrainConfig(**settings(tmp_path, **{**common, "out": resumed_out, "max_steps": 2}))).run()
    Trainer(TrainConfig(**settings(tmp_path, **{**common, "out": resumed_out, "resume": "latest"}))).run()
    assert losses(resumed_out) == expected
    a = GPT2Classifier.from_pretrained(whole.model_dir)
    b = GPT2Classifier.from_pretrained(resumed_out / "model")
    assert a.head.pooling == "mean"
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_bad_labels(tmp_path):
    write_labelled(tmp_path / "one.csv", LabelledSet(["a b", "c d", "e f"], ["x", "x", "x"], "mem"))
    with pytest.raises(DataError, match=r"one.csv: the label column 'label' holds one class \('x'\); a classifier "
                                        r"needs examples of at least two"):
        Trainer(TrainConfig(**settings(tmp_path, data=tmp_path / "one.csv")))
    write_labelled(tmp_path / "val.csv", LabelledSet(["fish", "cat", "dog"], ["sea", "pets", "pets"], "mem"))
    with pytest.raises(DataError, match=r"val.csv: label 'pets' never seen in training \(the classes are land, sea, "
                                        r"sky\)"):
        Trainer(TrainConfig(**settings(tmp_path, val_file=tmp_path / "val.csv")))
