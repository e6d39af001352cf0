"""Classification metrics against scikit-learn's on the same predictions, the printed table, the PNG,
and test labels the model never saw."""

from __future__ import annotations

import random

import pytest

from gpt2kit.data.labelled import LabelledSet
from gpt2kit.errors import DataError
from gpt2kit.evaluation.classification import classification_report, evaluate_classifier, plot_confusion
from gpt2kit.model import ClassifierConfig, GPT2Classifier
from gpt2kit.tokenizer import Tokenizer
from helpers import random_model

metrics = pytest.importorskip("sklearn.metrics")
LABELS = ["epistles", "gospels", "law", "prophets", "psalms"]


def predictions(seed: int) -> tuple[list[str], list[str]]:
    """Mostly right, some wrong; "psalms" is never true and never predicted, "law" never predicted."""
    rng = random.Random(seed)
    true = [rng.choice(LABELS[:4]) for _ in range(200)]
    predicted = [t if rng.random() < 0.6 else rng.choice(["epistles", "gospels", "prophets"]) for t in true]
    return true, [p if p != "law" else "prophets" for p in predicted]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learns(seed):
    true, predicted = predictions(seed)
    report = classification_report(true, predicted, LABELS)
    assert report.accuracy == pytest.approx(metrics.accuracy_score(true, predicted), abs=1e-12)
    assert report.macro_f1 == pytest.approx(metrics.f1_score(true, predicted, labels=LABELS, average="macro",
                                                             zero_division=0), abs=1e-12)
    p, r, f, s = metrics.precision_recall_fscore_support(true, predicted, labels=LABELS, zero_division=0)
    assert [c.precision for c in report.classes] == pytest.approx(list(p), abs=1e-12)
    assert [c.recall for c in report.classes] == pytest.approx(list(r), abs=1e-12)
    assert [c.f1 for c in report.classes] == pytest.approx(list(f), abs=1e-12)
    assert [c.support for c in report.classes] == list(s)
    assert [list(row) for row in report.confusion] == metrics.confusion_matrix(true, predicted, labels=LABELS).tolist()


def test_table_json_and_png(tmp_path):
    pytest.importorskip("matplotlib")
    report = classification_report(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    lines = report.lines()
    assert lines[0] == "accuracy  0.7500  (4 examples)"
    assert lines[-4] == "confusion matrix (rows: true class, columns: predicted)"
    assert [line.split() for line in lines[-3:]] == [["a", "b"], ["a", "1", "1"], ["b", "0", "2"]]
    assert lines[4].split() == ["a", "1.0000", "0.5000", "0.6667", "2"]  # precision, recall, F1, support
    assert report.to_dict()["confusion_matrix"] == [[1, 1], [0, 2]]
    png = plot_confusion(report, tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_unseen_in_training_are_named():
    model = GPT2Classifier(random_model(), ClassifierConfig(("law", "gospels")))
    data = LabelledSet(["Jesus wept.", "Selah.", "Amen."], ["gospels", "psalms", "amen"], "test.csv")
    with pytest.raises(DataError, match=r"test.csv: labels 'amen', 'psalms' never seen in training \(the model's "
                                        r"classes are law, gospels\)"):
        evaluate_classifier(model, Tokenizer.from_pretrained(), data)
