"""ROUGE F-scores x100, the two ways published GPT-2 summarization tables compute them, with
bootstrap confidence intervals.

- `rouge-score`: Google's `rouge-score` package (the `eval` extra) with stemming: ROUGE-1, -2, -L and
  -Lsum (sentences on their own lines, as that package expects; a summary's sentence ends become line
  breaks). The modern convention.
- `mindspore`: the method of the pltrdy `rouge` package, which MindSpore GPT-2's table used, on
  lowercased text (MindSpore's post-processing), an empty summary scored as "<EMPTY>". Implemented
  here: sentences are the pieces between '.', words split on single spaces; ROUGE-N compares the
  *sets* of n-grams (a repeat counts once); ROUGE-L is the summary-level union LCS, whose words are
  again counted as a set; F = 2PR / (P + R + 1e-8). Its numbers are not comparable with rouge-score's.

"Rouge-AVG" is the mean of ROUGE-1, -2 and -L. Scores are averaged over examples; the 95% interval is
the 2.5th and 97.5th percentile of the mean over `samples` resamplings of the examples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpt2kit.errors import GPT2KitError
from gpt2kit.extras import require

METRICS = ("rouge-score", "mindspore")
AVG = "rouge-avg"


class EvaluationError(GPT2KitError):
    """Unknown metrics, or predictions that cannot be scored."""


def score_pairs(summaries: Sequence[str], references: Sequence[str], metric: str = "rouge-score"
                ) -> list[dict[str, float]]:
    """Per pair, {rouge1, rouge2, rougeL[, rougeLsum], rouge-avg} F x100."""
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if len(summaries) != len(references):
        raise EvaluationError(f"{len(summaries)} summaries for {len(references)} references")
    scores = _google(summaries, references) if metric == "rouge-score" else \
        [_pltrdy(s.lower(), r.lower()) for s, r in zip(summaries, references, strict=True)]
    for row in scores:
        row[AVG] = (row["rouge1"] + row["rouge2"] + row["rougeL"]) / 3
    return scores


# ---- rouge-score ----------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _lines(text: str) -> str:
    """Sentences on lines of their own, for ROUGE-Lsum."""
    return "\n".join(s for line in text.split("\n") for s in _SENTENCE_END.split(line.strip()) if s)


def _google(summaries: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
    rouge_scorer = require("rouge_score.rouge_scorer", "eval", "ROUGE with --metric rouge-score")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    out = []
    for summary, reference in zip(summaries, references, strict=True):
        plain = scorer.score(reference, summary)  # (target, prediction)
        lsum = scorer.score(_lines(reference), _lines(summary))["rougeLsum"]
        out.append({"rouge1": 100 * plain["rouge1"].fmeasure, "rouge2": 100 * plain["rouge2"].fmeasure,
                    "rougeL": 100 * plain["rougeL"].fmeasure, "rougeLsum": 100 * lsum.fmeasure})
    return out


# ---- the pltrdy `rouge` package's method ------------------------------------------------------------

def _sentences(text: str) -> list[str]:
    return [" ".join(piece.split()) for piece in text.split(".") if piece]


def _words(sentences: list[str]) -> list[str]:
    return [w for s in sentences for w in s.split(" ")]


def _f(overlap: int, hyp: int, ref: int) -> float:
    p = overlap / hyp if hyp else 0.0
    r = overlap / ref if ref else 0.0
    return 2.0 * (p * r / (p + r + 1e-8))


def _ngram_f(hyp: list[str], ref: list[str], n: int) -> float:
    def grams(words: list[str]) -> set[tuple[str, ...]]:
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}

    h, r = grams(hyp), grams(ref)
    return _f(len(h & r), len(h), len(r))


def _lcs_words(x: list[str], y: list[str]) -> list[str]:
    """The words of one longest common subsequence of x and y, walking the table back from the end
    (a match goes diagonally; otherwise up when the cell above is strictly larger, else left)."""
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        above, row = table[i - 1], table[i]
        for j in range(1, len(y) + 1):
            row[j] = above[j - 1] + 1 if x[i - 1] == y[j - 1] else max(above[j], row[j - 1])
    out, i, j = [], len(x), len(y)
    while i and j:
        if x[i - 1] == y[j - 1]:
            out.append(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def _pltrdy(summary: str, reference: str) -> dict[str, float]:
    hyp, ref = _sentences(summary) or ["<empty>"], _sentences(reference) or ["<empty>"]
    hyp_words, ref_words = _words(hyp), _words(ref)
    union: set[str] = set()  # summary-level LCS: the union over every (reference, summary) sentence pair
    for r in ref:
        for h in hyp:
            union.update(_lcs_words(r.split(" "), h.split(" ")))
    return {"rouge1": 100 * _ngram_f(hyp_words, ref_words, 1), "rouge2": 100 * _ngram_f(hyp_words, ref_words, 2),
            "rougeL": 100 * _f(len(union), len(set(hyp_words)), len(set(ref_words)))}


# ---- averages and intervals -------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def aggregate(scores: Sequence[dict[str, float]], *, samples: int = 1000, seed: int = 0) -> dict[str, Interval]:
    """The mean of each score over the examples, with its 95% bootstrap interval."""
    if not scores:
        raise EvaluationError("no examples to score")
    names = list(scores[0])
    table = np.array([[row[n] for n in names] for row in scores], dtype=np.float64)  # (N, metrics)
    rng = np.random.default_rng(seed)
    means = np.empty((samples, len(names)))
    for start in range(0, samples, 100):  # 100 resamplings at a time bound the index array
        count = min(100, samples - start)
        picks = rng.integers(0, len(table), size=(count, len(table)))
        means[start:start + count] = table[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return {n: Interval(float(table[:, i].mean()), float(low[i]), float(high[i])) for i, n in enumerate(names)}
