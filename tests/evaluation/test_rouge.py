"""ROUGE against the packages that define it: Google's rouge-score (with stemming) and pltrdy's
`rouge` (the method of MindSpore GPT-2's table), on the same strings to 1e-6, with empty and
Unicode-heavy summaries; Rouge-AVG; bootstrap intervals."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gpt2kit.evaluation.rouge import AVG, EvaluationError, aggregate, score_pairs

WORDS = ("the cat sat on mat . dogs running ran quickly Über straße café naïve 東京 タワー — "
         "résumé … ! ? , the the cat cats quick. Ünïcödé 😀 emoji").split(" ")


def texts(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)

    def one() -> str:
        words = rng.choices(WORDS, k=rng.randint(1, 25))
        text = " ".join(words)
        return text.replace(" . ", ". ") if rng.random() < 0.5 else text

    return [(one(), one()) for _ in range(n)]


def test_mindspore_metric_is_the_pltrdy_package():
    rouge = pytest.importorskip("rouge")
    pairs = texts(200, seed=0) + [("", "a reference ."), ("The Cat SAT.", "the cat sat"),
                                  ("a a a b b", "a b a b"), ("one two. three four. one", "four three. two one")]
    ours = score_pairs([s for s, _ in pairs], [r for _, r in pairs], metric="mindspore")
    package = rouge.Rouge()
    for (summary, reference), mine in zip(pairs, ours, strict=True):
        hyp, ref = summary.lower(), reference.lower()
        if not [p for p in hyp.split(".") if p]:
            hyp = "<empty>"  # MindSpore scores an empty summary as "<EMPTY>" (the package refuses it)
        expected = package.get_scores(hyp, ref)[0]
        for key, name in (("rouge1", "rouge-1"), ("rouge2", "rouge-2"), ("rougeL", "rouge-l")):
            assert mine[key] == pytest.approx(100 * expected[name]["f"], abs=1e-6), (summary, reference, key)
        assert mine[AVG] == pytest.approx((mine["rouge1"] + mine["rouge2"] + mine["rougeL"]) / 3)


def test_rouge_score_metric_is_googles_package_with_stemming():
    from rouge_score import rouge_scorer

    pairs = texts(100, seed=1) + [("", "a reference."), ("Running dogs ran.", "the dog runs")]
    ours = score_pairs([s for s, _ in pairs], [r for _, r in pairs])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for (summary, reference), mine in zip(pairs, ours, strict=True):
        expected = scorer.score(reference, summary)
        for key in ("rouge1", "rouge2", "rougeL"):
            assert mine[key] == pytest.approx(100 * expected[key].fmeasure, abs=1e-6)
    lsum = score_pairs(["First one. Second one is here."], ["Second one is here.\nFirst one."])[0]["rougeLsum"]
    expected = scorer.score("Second one is here.\nFirst one.", "First one.\nSecond one is here.")["rougeLsum"]
    assert lsum == pytest.approx(100 * expected.fmeasure, abs=1e-6) and lsum == pytest.approx(100.0)


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    values = rng.normal(30, 10, size=400)
    result = aggregate([{"rouge1": float(v)} for v in values], samples=2000, seed=1)["rouge1"]
    stderr = values.std(ddof=1) / np.sqrt(len(values))
    assert result.mean == pytest.approx(values.mean())
    assert result.low == pytest.approx(values.mean() - 1.96 * stderr, abs=0.15 * stderr * 1.96)
    assert result.high == pytest.approx(values.mean() + 1.96 * stderr, abs=0.15 * stderr * 1.96)
    same = aggregate([{"rouge1": 1.0}] * 3, samples=10)["rouge1"]
    assert (same.mean, same.low, same.high) == (1.0, 1.0, 1.0)


def test_bad_input():
    with pytest.raises(EvaluationError, match="unknown metric 'bleu'; choose one of rouge-score, mindspore"):
        score_pairs(["a"], ["b"], metric="bleu")
    with pytest.raises(EvaluationError, match="no examples"):
        aggregate([])
