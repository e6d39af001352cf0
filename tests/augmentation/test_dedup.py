"""Duplicate detection: shingles and Jaccard against scikit-learn's character n-grams and Jaccard
distance; the inverted index against a direct comparison with every text; hand-checked cases."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gpt2kit.augmentation.dedup import DuplicateIndex, jaccard, normalise, shingles
from gpt2kit.errors import GPT2KitError


@pytest.fixture(scope="module")
def verses(kjv_text) -> list[str]:
    texts = [line.split(" ", 1)[1] for line in kjv_text.splitlines() if " " in line]
    return random.Random(0).sample(texts, 120)


def edited(text: str, rng: random.Random, words: int) -> str:
    """`text` with `words` of its words replaced."""
    parts = text.split()
    for _ in range(words):
        parts[rng.randrange(len(parts))] = rng.choice(["man", "LORD", "house", "spake", "went"])
    return " ".join(parts)


def test_normal_form_ignores_case_punctuation_and_spacing():
    assert normalise("And God said,  Let there be light:\nand there was light.") == \
        "and god said let there be light and there was light"
    assert normalise("ＬＯＲＤ’s") == "lord s"  # NFKC folds the full-width letters; the apostrophe is punctuation
    assert normalise(" ,.; ") == ""
    assert shingles("abc") == frozenset(["abc"])  # shorter than a shingle: the whole text is one
    assert shingles("!!") == frozenset()
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_jaccard_equals_scikit_learn_on_character_5_grams(verses):
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.metrics import pairwise_distances

    texts = verses[:60] + [edited(t, random.Random(1), 1) for t in verses[:20]]
    vectorizer = CountVectorizer(analyzer="char", ngram_range=(5, 5), preprocessor=normalise, lowercase=False,
                                 binary=True)
    matrix = vectorizer.fit_transform(texts).toarray().astype(bool)
    reference = 1 - pairwise_distances(matrix, metric="jaccard")  # scikit-learn: 1 - Jaccard similarity
    sets = [shingles(t) for t in texts]
    ours = np.array([[jaccard(a, b) for b in sets] for a in sets])
    np.testing.assert_allclose(ours, reference, atol=1e-12)
    assert (ours[np.triu_indices(60, 1)] < 0.5).mean() > 0.99  # different verses are rarely near duplicates


def test_index_finds_the_most_similar_text_as_a_direct_comparison_does(verses):
    rng = random.Random(2)
    index = DuplicateIndex(0.5)
    index.add_all(verses[:80])
    sets = [shingles(t) for t in verses[:80]]
    queries = verses[80:] + [edited(t, rng, w) for t in verses[:40] for w in (1, 3, 6)]
    found = 0
    for query in queries:
        scores = [jaccard(shingles(query), s) for s in sets]
        best = int(np.argmax(scores))
        match = index.match(query)
        if scores[best] >= 0.5:
            found += 1
            assert match is not None and match.kind == "near" and match.index == best, query
            assert match.similarity == pytest.approx(scores[best], abs=1e-12)
        else:
            assert match is None, (query, match)
    assert 40 <= found < len(queries)  # the edits of one word at least are found, not everything


def test_hand_checked_cases():
    index = DuplicateIndex(0.5)
    source = "And the LORD spake unto Moses, saying, Speak unto the children of Israel."
    index.add(source)
    assert index.match("and the lord spake unto moses saying speak unto the children of israel").kind == "exact"
    near = index.match("And the LORD spake unto Aaron, saying, Speak unto the children of Israel.")
    assert near.kind == "near" and 0.7 < near.similarity < 1  # one word of twelve changed
    assert index.match("Blessed are the meek: for they shall inherit the earth.") is None
    assert index.match("...") is None  # nothing left to compare
    strict = DuplicateIndex(1.0)
    strict.add(source)
    assert strict.match("And the LORD spake unto Aaron, saying, Speak unto the children of Israel.") is None


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5])
def test_threshold_out_of_range_is_refused(threshold):
    with pytest.raises(GPT2KitError, match="near-duplicate threshold must be in"):
        DuplicateIndex(threshold)
