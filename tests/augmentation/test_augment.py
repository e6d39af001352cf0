"""The augmentation loop on a scripted language model (a Decoder whose next-token distribution is
written by hand): what it keeps is checked by comparing every pair of texts directly."""

from __future__ import annotations

import itertools

import pytest
import torch

from gpt2kit.augmentation.augment import augment
from gpt2kit.augmentation.dedup import jaccard, normalise, shingles
from gpt2kit.augmentation.lines import prompt_ids
from gpt2kit.config import GPT2Config
from gpt2kit.data.labelled import LabelledSet
from gpt2kit.errors import AugmentationError, DataError
from gpt2kit.generation import GenerationSettings
from gpt2kit.tokenizer import Tokenizer

WORDS = (" lamb", " goat", " ram", " ox")


class Cache:
    def __init__(self) -> None:
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        pass

    def reset(self) -> None:
        self.length = 0


class Scripted:
    """After a word: another word (each weight 1) or <|endoftext|> (weight `stop`); after anything
    else (the prompt): a word. `words` limits the choice. Records the prompts it is given."""

    def __init__(self, tok: Tokenizer, words=WORDS, stop: float = 1.0) -> None:
        self.config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=4, n_layer=1, n_head=1)
        self.generation_config: dict = {}
        self.word_ids = [tok.encode(w)[0] for w in words]
        assert all(len(tok.encode(w)) == 1 for w in words)
        self.eot, self.stop = tok.eot_id, stop
        self.prompts: list[list[int]] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def new_cache(self, batch_size: int, max_length: int | None = None) -> Cache:
        return Cache()

    def __call__(self, input_ids, *, attention_mask=None, position_ids=None, cache=None, last_only=False):
        if cache is not None:
            if cache.length == 0:
                mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
                self.prompts += [row[m.bool()].tolist() for row, m in zip(input_ids, mask, strict=True)]
            cache.length += input_ids.shape[1]
        logits = torch.full((*input_ids.shape, self.config.vocab_size), -1e9)  # (B, T, V)
        after_word = torch.isin(input_ids, torch.tensor(self.word_ids))
        for w in self.word_ids:
            logits[..., w] = 0.0
        logits[..., self.eot] = torch.where(after_word, torch.tensor(float(self.stop)).log(), torch.tensor(-1e9))
        return logits[:, -1:] if last_only else logits


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_pretrained()


@pytest.fixture
def data() -> LabelledSet:
    return LabelledSet(["lamb goat ram", "ox ox", "The ram and the goat.", "lamb"], ["OT", "OT", "NT", "NT"], "test")


def check_kept(result, data: LabelledSet, threshold: float) -> None:
    """No kept text duplicates a source or another kept text, by a direct comparison of every pair."""
    texts = [*data.texts, *result.texts]
    for i, j in itertools.combinations(range(len(texts)), 2):
        if i >= len(data.texts) or j >= len(data.texts):
            assert normalise(texts[i]) != normalise(texts[j]), (texts[i], texts[j])
            assert jaccard(shingles(texts[i]), shingles(texts[j])) < threshold, (texts[i], texts[j])


def test_new_examples_are_unique_counted_and_repeatable(tok, data):
    model = Scripted(tok)
    settings = GenerationSettings(max_new_tokens=12, seed=0, batch_size=5)
    result = augment(model, tok, data, 6, settings, near_duplicate=0.6, max_tries=5, progress=False)
    assert [c.label for c in result.counts] == ["NT", "OT"]
    for count in result.counts:
        assert count.kept == result.labels.count(count.label) == 6
        assert count.generated == (count.incomplete + count.duplicates + count.near_duplicates + count.filtered
                                   + count.kept)
    assert sum(c.duplicates + c.near_duplicates for c in result.counts) > 0  # short texts repeat: the path is taken
    assert all(set(t.split()) <= {w.strip() for w in WORDS} for t in result.texts)
    check_kept(result, data, 0.6)
    assert {tuple(p) for p in model.prompts} == {tuple(prompt_ids(tok, label)) for label in ("NT", "OT")}
    again = augment(Scripted(tok), tok, data, 6, settings, near_duplicate=0.6, max_tries=5, progress=False)
    assert (again.texts, again.labels) == (result.texts, result.labels)
    labelled = result.as_labelled(LabelledSet(["x"], ["y"], "in", text_column="verse", label_column="book"))
    assert (labelled.text_column, labelled.label_column, labelled.texts) == ("verse", "book", result.texts)


def test_keep_drops_what_the_filter_rejects(tok, data):
    asked: list[tuple[str, list[str]]] = []

    def keep(texts: list[str], label: str) -> list[bool]:
        asked.append((label, texts))
        return ["goat" not in t for t in texts]

    result = augment(Scripted(tok), tok, data, 4, GenerationSettings(max_new_tokens=12, seed=1), keep=keep,
                     near_duplicate=0.6, max_tries=8, progress=False)
    assert result.texts and not any("goat" in t for t in result.texts)
    assert sum(c.filtered for c in result.counts) == sum("goat" in t for _, texts in asked for t in texts) > 0
    for label, texts in asked:  # only new, whole texts are put to the filter, each once
        assert label in ("NT", "OT") and len(set(map(normalise, texts))) == len(texts)
    check_kept(result, data, 0.6)


def test_max_tries_bounds_the_samples_of_a_label(tok):
    """A model that can only write `lamb`: one new text, then duplicates until the budget is spent.
    A single class is augmented like any other."""
    one = LabelledSet(["ox ox"], ["OT"], "test")
    result = augment(Scripted(tok, words=(" lamb",), stop=1e9), tok, one, 5, GenerationSettings(seed=0),
                     max_tries=3, progress=False)
    (count,) = result.counts
    assert (count.generated, count.kept, count.duplicates) == (15, 1, 14)
    assert result.texts == ["lamb"] and result.short == [count]
    assert "raise the temperature" in count.advice()
    assert result.table().splitlines()[1].split() == ["OT", "15", "0", "14", "0", "0", "1"]


def test_cut_off_texts_are_dropped(tok, data):
    result = augment(Scripted(tok, stop=1e-9), tok, data, 2, GenerationSettings(max_new_tokens=4, seed=0),
                     max_tries=2, progress=False)
    assert result.texts == [] and all(c.incomplete == c.generated == 4 for c in result.counts)
    assert "raise max-new-tokens" in result.counts[0].advice()


@pytest.mark.parametrize("per_class", [0, -3])
def test_per_class_below_one_is_refused(tok, data, per_class):
    with pytest.raises(AugmentationError, match=f"--per-class must be at least 1.*got {per_class}"):
        augment(Scripted(tok), tok, data, per_class, progress=False)


def test_bad_requests_are_refused(tok, data):
    with pytest.raises(AugmentationError, match="example 2 has an empty 'text'"):
        augment(Scripted(tok), tok, LabelledSet(["a", " "], ["x", "y"], "t.csv"), 1, progress=False)
    with pytest.raises(AugmentationError, match="greedy decoding"):
        augment(Scripted(tok), tok, data, 1, GenerationSettings(temperature=0), progress=False)
    with pytest.raises(DataError, match="label is empty"):
        augment(Scripted(tok), tok, LabelledSet(["a"], [" "], "t.csv"), 1, progress=False)
