"""New labelled examples from a language model that knows the `label: text` format.

For each label, rows prompted with `<|endoftext|>label:` are sampled in batches; each completion
is cut at the end of its line. A text is dropped when it is empty or was cut off by the token
limit before its end, when it duplicates a source text or an earlier generated one (exactly or
nearly: dedup.py), and when the optional `keep` test rejects it (a classifier that does not assign
it to the intended label). Rounds go on until every label has `per_class` new examples or has drawn
`max_tries` x `per_class` samples; what each label kept and lost is counted in `LabelCount`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from gpt2kit.augmentation.dedup import NEAR_DUPLICATE, DuplicateIndex
from gpt2kit.augmentation.lines import END_OF_LINE, generated_text, prompt_ids
from gpt2kit.backends.decoder import Decoder
from gpt2kit.data.labelled import LabelledSet
from gpt2kit.errors import AugmentationError
from gpt2kit.generation import GenerationSettings, generate_all
from gpt2kit.generation.text import completion_text
from gpt2kit.tokenizer import Tokenizer

# keep(texts, label) -> one bool per text: whether it may stay as an example of `label`
Keep = Callable[[list[str], str], list[bool]]
ROWS_PER_BATCH = 32  # rows per forward pass when the settings leave batch_size open


@dataclass
class LabelCount:
    label: str
    generated: int = 0  # samples drawn
    incomplete: int = 0  # empty, or cut off by the token limit before the example ended
    duplicates: int = 0  # the same normal form as a source text or an earlier generated one
    near_duplicates: int = 0  # shingle Jaccard >= the threshold with one of them
    filtered: int = 0  # rejected by `keep`
    kept: int = 0

    def advice(self) -> str:
        """What to change when this label came out short: the remedy of its largest loss."""
        losses = {"incomplete": (self.incomplete, "raise max-new-tokens (texts were cut off before their line "
                                                  "ended)"),
                  "duplicates": (self.duplicates + self.near_duplicates,
                                 "raise the temperature or the near-duplicate threshold (the model repeats texts)"),
                  "filtered": (self.filtered, "fine-tune the model longer, or check the filter (the classifier "
                                              "rejected most texts)")}
        count, remedy = max(losses.values(), key=lambda loss: loss[0])
        return remedy if count else "raise max-tries"


@dataclass
class Augmented:
    texts: list[str]
    labels: list[str]  # in label order, each label's texts in the order they were kept
    counts: list[LabelCount]
    per_class: int  # asked for
    near_duplicate: float  # threshold used
    max_tries: int

    def as_labelled(self, like: LabelledSet, source: str = "") -> LabelledSet:
        """The new examples with the column names of the data they augment."""
        return LabelledSet(list(self.texts), list(self.labels), source or like.source,
                           text_column=like.text_column, label_column=like.label_column)

    @property
    def short(self) -> list[LabelCount]:
        """Labels that kept fewer than asked for."""
        return [c for c in self.counts if c.kept < self.per_class]

    def table(self) -> str:
        """The counts, one row per label, as fixed-width text."""
        columns = [f.name for f in dataclasses.fields(LabelCount)]
        rows = [[str(getattr(c, name)) for name in columns] for c in self.counts]
        total = ["total"] + [str(sum(getattr(c, name) for c in self.counts)) for name in columns[1:]]
        header = [name.replace("_", " ") for name in columns]
        widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(len(columns))]

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                              strict=True)))

        return "\n".join([line(header), *map(line, rows), *([line(total)] if len(rows) > 1 else [])])


def check_request(data: LabelledSet, per_class: int, settings: GenerationSettings, max_tries: int,
                  near_duplicate: float = NEAR_DUPLICATE) -> None:
    """Refuse what cannot give new examples, before any work."""
    DuplicateIndex(near_duplicate)  # checks the threshold
    if per_class < 1:
        raise AugmentationError(f"--per-class must be at least 1 (new examples per label), got {per_class}")
    if max_tries < 1:
        raise AugmentationError(f"--max-tries must be at least 1 (samples drawn per wanted example), got {max_tries}")
    if not data.texts:
        raise AugmentationError(f"{data.source}: no examples to augment")
    empty = next((i for i, t in enumerate(data.texts) if not t.strip()), None)
    if empty is not None:
        raise AugmentationError(f"{data.source}: example {empty + 1} has an empty {data.text_column!r}; "
                                "remove it or fill it in")
    if settings.greedy:
        raise AugmentationError("greedy decoding (temperature 0, or beam search) gives the same text every time; "
                                "sample with a temperature > 0")
    if settings.num_beams > 1:
        raise AugmentationError("augmentation samples one text per row: drop beam search (num-beams)")


def augment(model: Decoder, tokenizer: Tokenizer, data: LabelledSet, per_class: int,
            settings: GenerationSettings | None = None, *, near_duplicate: float = NEAR_DUPLICATE,
            max_tries: int = 4, keep: Keep | None = None, progress: bool = True) -> Augmented:
    """`per_class` new examples of each label of `data` (fewer where `max_tries` x `per_class`
    samples did not give them), from a model fine-tuned on `label: text` lines (tune.py).

    `settings`: the generation settings (temperature, top-k/p, max_new_tokens, seed, ...; default
    GenerationSettings()); a newline is added to its stop strings, and its `batch_size` is the rows
    per forward pass (default 32). With a seed, batch b samples with seed + b, so that a run is
    repeatable and its batches differ."""
    settings = settings or GenerationSettings()
    check_request(data, per_class, settings, max_tries, near_duplicate)
    labels = data.label_names
    prompts = {label: prompt_ids(tokenizer, label) for label in labels}
    rows_per_batch = settings.batch_size or ROWS_PER_BATCH
    settings = dataclasses.replace(settings, stop=(*settings.stop, END_OF_LINE), num_samples=1, batch_size=None)
    index = DuplicateIndex(near_duplicate)
    index.add_all(data.texts)
    counts = {label: LabelCount(label) for label in labels}
    kept: dict[str, list[str]] = {label: [] for label in labels}
    batch_number = 0
    bar = tqdm(total=per_class * len(labels), desc="augmenting", unit="example", disable=not progress,
               dynamic_ncols=True)
    with bar:
        while True:
            # each round asks every label for as many samples as it is still short of, within its budget
            rows = [label for label in labels for _ in range(min(per_class - counts[label].kept,
                                                                 per_class * max_tries - counts[label].generated))]
            if not rows:
                break
            for start in range(0, len(rows), rows_per_batch):
                chunk = rows[start:start + rows_per_batch]
                seed = None if settings.seed is None else settings.seed + batch_number
                batch_number += 1
                batch_settings = dataclasses.replace(settings, seed=seed)
                generations = generate_all(model, [prompts[label] for label in chunk], batch_settings,
                                           tokenizer.token_bytes)
                before = sum(c.kept for c in counts.values())
                for label in dict.fromkeys(chunk):
                    mine = [g for g in generations if chunk[g.prompt_index] == label]
                    texts = [completion_text(tokenizer, g.token_ids, g.finish_reason, batch_settings)
                             for g in mine]
                    candidates = _unique(texts, [g.finish_reason for g in mine], index, counts[label])
                    kept[label] += _accepted(candidates, label, keep, counts[label])
                    counts[label].kept = len(kept[label])
                bar.update(sum(c.kept for c in counts.values()) - before)
                bar.set_postfix(drawn=sum(c.generated for c in counts.values()))
    return Augmented([t for label in labels for t in kept[label]],
                     [label for label in labels for _ in kept[label]],
                     [counts[label] for label in labels], per_class, near_duplicate, max_tries)


def _accepted(candidates: list[str], label: str, keep: Keep | None, count: LabelCount) -> list[str]:
    """The candidates `keep` accepts as examples of `label` (all of them without a `keep`)."""
    if keep is None or not candidates:
        return candidates
    answers = keep(candidates, label)
    if len(answers) != len(candidates):
        raise ValueError(f"keep returned {len(answers)} answers for {len(candidates)} texts")
    count.filtered += sum(not ok for ok in answers)
    return [text for text, ok in zip(candidates, answers, strict=True) if ok]


def _unique(completions: Sequence[str], reasons: Sequence[str], index: DuplicateIndex,
            count: LabelCount) -> list[str]:
    """The completions that are whole examples and new; each is added to `index`, so that the ones
    after it (and later batches) are compared with it too. A text a `keep` test rejects later stays
    in the index: a near copy of it is then counted as a duplicate, not tested again."""
    new = []
    for completion, reason in zip(completions, reasons, strict=True):
        count.generated += 1
        text = generated_text(completion)
        if not text or reason == "length":
            count.incomplete += 1
            continue
        match = index.match(text)
        if match is not None:
            if match.kind == "exact":
                count.duplicates += 1
            else:
                count.near_duplicates += 1
            continue
        index.add(text)
        new.append(text)
    return new


__all__ = ["Augmented", "Keep", "LabelCount", "augment", "check_request"]
