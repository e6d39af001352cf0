"""`gpt2kit classify`: the class of each text, with every class's probability, as JSONL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpt2kit.atomic import atomic_write
from gpt2kit.classification import classify
from gpt2kit.cli.args import add_device_options, add_model_option, load_model, positive_int
from gpt2kit.data.labelled import read_texts


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="label texts with a classifier (JSONL: label and probabilities)",
                       description="Label texts with a classifier trained by `gpt2kit finetune --task classify` (or "
                                   "transformers' GPT2ForSequenceClassification): one JSON line per text, with the "
                                   "text, its label and the probability of every class.")
    add_model_option(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", metavar="TEXT", help="a text to classify (repeat for more)")
    source.add_argument("--input", type=Path, metavar="FILE",
                        help="texts to classify: the text column of a .csv / .jsonl, or one text a line of any "
                             "other file")
    p.add_argument("--text-column", default="text", metavar="NAME",
                   help="field of .csv / .jsonl rows holding the text (default text)")
    p.add_argument("--output", type=Path, default=None, metavar="FILE", help="write the JSONL here (default stdout)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="B",
                   help="texts per forward pass (default 32)")
    add_device_options(p, backends=False)
    p.set_defaults(run=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    texts = args.text if args.text is not None else read_texts(args.input, args.text_column)
    loaded = load_model(args, task="classify")
    predictions = classify(loaded.model, loaded.tokenizer, texts, batch_size=args.batch_size, progress=True)
    lines = "".join(json.dumps({"text": text, **p.to_dict()}, ensure_ascii=False) + "\n"
                    for text, p in zip(texts, predictions, strict=True))
    if args.output is None:
        sys.stdout.write(lines)
    else:
        atomic_write(args.output, lines)
        print(f"{len(predictions):,} texts classified into {args.output}", file=sys.stderr)
    return 0
