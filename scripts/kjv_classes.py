"""A labelled set from text nobody here wrote: King James Bible verses (tests/fixtures/kjv.txt.xz, one
verse a line after its reference, `Ge1:1 In the beginning ...`) labelled by the group of books they
come from: law (Genesis-Deuteronomy), prophets (Isaiah-Malachi), gospels (Matthew-John) and
epistles (Romans-Jude). Train and test verses are drawn apart (disjoint) by the seed.

    python scripts/kjv_classes.py --out data/kjv --train-per-class 50 --test-per-class 300
    # -> data/kjv/train.csv, data/kjv/test.csv (text, label)
"""

from __future__ import annotations

import argparse
import lzma
import re
from pathlib import Path

import numpy as np

from gpt2kit.data.labelled import LabelledSet, write_labelled

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "kjv.txt.xz"
GROUPS = {  # the fixture's book abbreviations (Debian's bible-kjv)
    "law": ("Ge", "Exo", "Lev", "Num", "Deu"),
    "prophets": ("Isa", "Jer", "Lam", "Eze", "Dan", "Hos", "Joel", "Amos", "Obad", "Jonah", "Mic", "Nahum", "Hab",
                 "Zep", "Hag", "Zec", "Mal"),
    "gospels": ("Mat", "Mark", "Luke", "John"),
    "epistles": ("Rom", "1Cor", "2Cor", "Gal", "Eph", "Phi", "Col", "1Th", "2Th", "1Tim", "2Tim", "Titus", "Phmn",
                 "Heb", "Jas", "1Pet", "2Pet", "1Jn", "2Jn", "3Jn", "Jude"),
}
REFERENCE = re.compile(r"^(\d?[A-Za-z]+)\d+:\d+ (.+)$")


def verses_by_group(text: str) -> dict[str, list[str]]:
    group_of = {book: group for group, books in GROUPS.items() for book in books}
    found: dict[str, list[str]] = {group: [] for group in GROUPS}
    for line in text.splitlines():
        match = REFERENCE.match(line)
        if match and match.group(1) in group_of:
            found[group_of[match.group(1)]].append(match.group(2).strip())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write train.csv and test.csv to")
    parser.add_argument("--train-per-class", type=int, default=50, help="training verses per group (default 50)")
    parser.add_argument("--test-per-class", type=int, default=300, help="test verses per group (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    splits: dict[str, tuple[list[str], list[str]]] = {"train": ([], []), "test": ([], [])}
    for group, verses in verses_by_group(lzma.decompress(FIXTURE.read_bytes()).decode("utf-8")).items():
        verses = sorted(set(verses))  # a verse repeated word for word elsewhere is one example, in one split
        order = rng.permutation(len(verses))
        cut = args.train_per_class
        for name, picked in (("train", order[:cut]), ("test", order[cut:cut + args.test_per_class])):
            splits[name][0].extend(verses[i] for i in picked)
            splits[name][1].extend([group] * len(picked))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (texts, labels) in splits.items():
        shuffle = rng.permutation(len(texts))  # files not sorted by class
        write_labelled(args.out / f"{name}.csv", LabelledSet([texts[i] for i in shuffle], [labels[i] for i in shuffle],
                                                             name))
        print(f"{args.out / name}.csv: {len(texts)} verses, {len(GROUPS)} classes")


if __name__ == "__main__":
    main()
