"""Exact and near duplicates of short texts: normalised text, character shingles, Jaccard similarity.

A generated example that repeats a source text, or another generated one, with a word or two
changed teaches a classifier nothing new, so it is dropped like an exact copy. Texts are compared
after `normalise` (Unicode NFKC, case folded, punctuation dropped, whitespace collapsed): two texts
with the same normal form are exact duplicates. Near duplicates are measured on the sets of
character n-grams ("shingles", n = 5 by default) of the normal forms:

- Character shingles, not word n-grams: augmented examples are short (a sentence, a verse). One
  changed word in a 20-word sentence removes n of its ~18 word n-grams (Jaccard 0.5 for word
  trigrams: a copy would look new), while it changes only about n + the word's length of its ~100
  character 5-grams. Measured on 400 random KJV verses: a verse and itself with one word replaced
  have a median Jaccard of 0.88 (lowest 0.55), with three words replaced 0.72 (10th percentile
  0.54), while two different verses have a median of 0.02, a 99.9th percentile of 0.12 and a
  highest of 0.50 (two parallel verses of Samuel). Hence the default threshold of 0.5
  (`NEAR_DUPLICATE`): every one-word edit and most three-word edits are duplicates, different
  texts of one style are not.
- Exact Jaccard through an inverted index (shingle -> texts holding it), not MinHash / LSH: the
  sets augmentation sees are small (the source set and a few thousand generated texts), so counting
  shared shingles for every candidate costs milliseconds, and, unlike MinHash, misses no pair above
  the threshold.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from gpt2kit.errors import GPT2KitError

SHINGLE = 5  # characters per shingle
NEAR_DUPLICATE = 0.5  # default Jaccard threshold (see above)


def normalise(text: str) -> str:
    """The form texts are compared in: NFKC, case folded, punctuation dropped, whitespace collapsed
    to single spaces ("And God said, Let there be light:" -> "and god said let there be light")."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(text.split())


def shingles(text: str, n: int = SHINGLE) -> frozenset[str]:
    """The character n-grams of `normalise(text)`; a normal form shorter than n is one shingle, itself
    (so short texts are compared whole); an empty one has none."""
    norm = normalise(text)
    if len(norm) <= n:
        return frozenset([norm]) if norm else frozenset()
    return frozenset(norm[i:i + n] for i in range(len(norm) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b|; 0 for two empty sets (nothing in common to call a duplicate)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass(frozen=True)
class Match:
    kind: str  # "exact" (the same normal form) or "near" (shingle Jaccard >= the threshold)
    index: int  # of the text it duplicates, in the order texts were added
    similarity: float  # Jaccard of their shingles (1.0 for exact duplicates)


class DuplicateIndex:
    """Texts added so far, to ask whether a new text duplicates one of them.

    `threshold` is the Jaccard similarity from which a text is a near duplicate, in (0, 1];
    1 keeps only exact duplicates out (by their normal form)."""

    def __init__(self, threshold: float, n: int = SHINGLE) -> None:
        if not 0 < threshold <= 1:
            raise GPT2KitError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        if n < 1:
            raise ValueError(f"shingle size must be >= 1, got {n}")
        self.threshold, self.n = threshold, n
        self.normal: dict[str, int] = {}  # normal form -> index of its first text
        self.sizes: list[int] = []  # shingle count of each text
        self.postings: dict[str, list[int]] = {}  # shingle -> indices of the texts holding it

    def __len__(self) -> int:
        return len(self.sizes)

    def add(self, text: str) -> int:
        """Index `text` (whether or not it duplicates another) and return its index."""
        index = len(self.sizes)
        self.normal.setdefault(normalise(text), index)
        grams = shingles(text, self.n)
        self.sizes.append(len(grams))
        for gram in grams:
            self.postings.setdefault(gram, []).append(index)
        return index

    def add_all(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def match(self, text: str) -> Match | None:
        """The indexed text `text` duplicates (the most similar one, the earliest on ties), or None."""
        exact = self.normal.get(normalise(text))
        if exact is not None:
            return Match("exact", exact, 1.0)
        grams = shingles(text, self.n)
        if not grams:
            return None
        shared = Counter(i for gram in grams for i in self.postings.get(gram, ()))
        best: Match | None = None
        for index, common in sorted(shared.items()):
            similarity = common / (len(grams) + self.sizes[index] - common)
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = Match("near", index, similarity)
        return best
