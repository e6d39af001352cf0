"""Classification metrics: accuracy, macro-F1, per-class precision / recall / F1 / support, and the
confusion matrix (a table to print, a PNG to look at).

Definitions are scikit-learn's with zero_division=0: a class never predicted has precision 0, a
class absent from the data recall 0; macro-F1 is the unweighted mean of the per-class F1 over the
classes the model knows.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpt2kit.atomic import atomic_write
from gpt2kit.classification.predict import Prediction, check_classifier, classify
from gpt2kit.data.labelled import LabelledSet
from gpt2kit.errors import DataError
from gpt2kit.extras import require
from gpt2kit.tokenizer import Tokenizer


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # examples of this class in the data


@dataclass(frozen=True)
class ClassificationReport:
    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    classes: tuple[ClassScores, ...]  # in the order of labels
    confusion: tuple[tuple[int, ...], ...]  # [true][predicted], in the order of labels

    @property
    def total(self) -> int:
        return sum(map(sum, self.confusion))

    def to_dict(self) -> dict:
        return {"examples": self.total, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "classes": {c.label: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
                            for c in self.classes},
                "labels": list(self.labels), "confusion_matrix": [list(row) for row in self.confusion]}

    def lines(self) -> list[str]:
        """The scores and the confusion matrix as aligned text."""
        width = max(8, *(len(label) for label in self.labels))
        out = [f"accuracy  {self.accuracy:.4f}  ({self.total:,} examples)", f"macro-F1  {self.macro_f1:.4f}", "",
               f"{'class':<{width}}  precision  recall      f1  support"]
        for c in self.classes:
            out.append(f"{c.label:<{width}}  {c.precision:9.4f}  {c.recall:6.4f}  {c.f1:6.4f}  {c.support:7,}")
        cell = max(5, *(len(label) for label in self.labels), len(str(max(map(max, self.confusion)))))
        out += ["", "confusion matrix (rows: true class, columns: predicted)",
                f"{'':<{width}}  " + "  ".join(f"{label:>{cell}}" for label in self.labels)]
        for label, row in zip(self.labels, self.confusion, strict=True):
            out.append(f"{label:<{width}}  " + "  ".join(f"{n:>{cell}}" for n in row))
        return out


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def classification_report(true: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> ClassificationReport:
    """The metrics of `predicted` against `true` over the classes `labels` (every label of both must be
    one of them)."""
    if len(true) != len(predicted):
        raise ValueError(f"{len(true)} true labels but {len(predicted)} predictions")
    if not true:
        raise DataError("no examples to evaluate")
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for t, p in zip(true, predicted, strict=True):
        confusion[index[t]][index[p]] += 1
    classes = []
    for i, label in enumerate(labels):
        hits = confusion[i][i]
        support = sum(confusion[i])
        predicted_as = sum(row[i] for row in confusion)
        precision, recall = _ratio(hits, predicted_as), _ratio(hits, support)
        f1 = _ratio(2 * hits, support + predicted_as)  # 2PR / (P + R), without dividing by zero
        classes.append(ClassScores(label, precision, recall, f1, support))
    accuracy = sum(confusion[i][i] for i in range(len(labels))) / len(true)
    macro_f1 = sum(c.f1 for c in classes) / len(classes)
    return ClassificationReport(tuple(labels), accuracy, macro_f1, tuple(classes),
                                tuple(tuple(row) for row in confusion))


def evaluate_classifier(model, tokenizer: Tokenizer, data: LabelledSet, *, batch_size: int = 32,
                        progress: bool = False) -> tuple[ClassificationReport, list[Prediction]]:
    """The model's report on labelled `data`, and its predictions (in the data's order). Labels the
    model was not trained on are refused by name: they could never be predicted."""
    model = check_classifier(model)
    unseen = sorted(set(data.labels) - set(model.labels))
    if unseen:
        raise DataError(f"{data.source}: label{'s' * (len(unseen) > 1)} {', '.join(map(repr, unseen))} never seen in "
                        f"training (the model's classes are {', '.join(model.labels)})")
    predictions = classify(model, tokenizer, data.texts, batch_size=batch_size, progress=progress)
    return classification_report(data.labels, [p.label for p in predictions], model.labels), predictions


def plot_confusion(report: ClassificationReport, out: str | Path, title: str = "") -> Path:
    """The confusion matrix as a PNG, each cell with its count and shaded by the share of its true class.
    Raises MissingExtraError without matplotlib (the `plot` extra)."""
    out = Path(out)
    matplotlib = require("matplotlib", "plot", f"the confusion matrix plot {out.name}")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.labels)
    shares = [[_ratio(x, sum(row)) for x in row] for row in report.confusion]
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.1 * n + 1.8), dpi=100)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(report.confusion):
        for j, count in enumerate(row):
            ax.text(j, i, f"{count:,}", ha="center", va="center", color="white" if shares[i][j] > 0.5 else "black")
    ax.set_xticks(range(n), report.labels, rotation=45, ha="right")
    ax.set_yticks(range(n), report.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return atomic_write(out, png.getvalue())
