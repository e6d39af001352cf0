"""`gpt2kit augment`: new labelled examples from a language model fine-tuned on `label: text` lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt2kit.augmentation.augment import ROWS_PER_BATCH, check_request
from gpt2kit.augmentation.dedup import NEAR_DUPLICATE
from gpt2kit.augmentation.run import Runtime, augment_labelled
from gpt2kit.augmentation.tune import TuneSettings
from gpt2kit.cli.args import DTYPES, add_device_options, add_model_option, non_negative_int, positive_int
from gpt2kit.cli.generation_options import add_generation_options, settings_from_args
from gpt2kit.data.labelled import TABLES, read_labelled, write_labelled
from gpt2kit.errors import AugmentationError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "augment", help="generate new labelled examples for a small labelled set",
        description="Fine-tune a language model on the examples as `label: text` lines, then generate "
                    "--per-class new examples of each label (prompted with `label:`), drop empty and cut-off "
                    "texts and exact and near duplicates of the source and of each other, and write the rest "
                    "with their labels, in the columns of the input. A table of what each label generated, "
                    "dropped and kept goes to stderr.")
    add_model_option(p, required=False)
    io = p.add_argument_group("data")
    io.add_argument("--data", type=Path, required=True, metavar="PATH",
                    help="labelled examples: a .csv or .jsonl table with a text and a label column, or a folder "
                         "with a sub-folder of text files per class; one class is fine (it gets more examples)")
    io.add_argument("--text-column", default="text", metavar="NAME", help="column of the texts (default text)")
    io.add_argument("--label-column", default="label", metavar="NAME", help="column of the labels (default label)")
    io.add_argument("--per-class", type=int, required=True, metavar="N", help="new examples to generate per label")
    io.add_argument("--out", type=Path, default=None, metavar="FILE",
                    help="where to write the new examples, .csv or .jsonl (default: DATA with .augmented before "
                         "its suffix, e.g. train.augmented.csv; a .csv beside a class folder); only the new rows, "
                         "written atomically")
    keep = p.add_argument_group("what is kept")
    keep.add_argument("--near-duplicate", type=float, default=NEAR_DUPLICATE, metavar="J",
                      help="drop a text whose character 5-grams have a Jaccard similarity >= J with a source text "
                           f"or an earlier new one, in (0, 1]; 1 drops exact duplicates only (default "
                           f"{NEAR_DUPLICATE}: a verse with one word changed scores about 0.9, two different "
                           "verses under 0.15)")
    keep.add_argument("--filter", default=None, metavar="M_CLS",
                      help="a classifier (`gpt2kit finetune --task classify`, or transformers' "
                           "GPT2ForSequenceClassification folder) of the data's labels: a new text is kept only if "
                           "it predicts the label the text was generated for (the usual guard against drift); "
                           "default: no filter")
    keep.add_argument("--max-tries", type=positive_int, default=4, metavar="K",
                      help="draw at most K x --per-class samples per label; a label still short then is reported "
                           "(default 4)")
    tune = p.add_argument_group("fine-tuning on the `label: text` lines (a `gpt2kit finetune` run)")
    tune.add_argument("--steps", type=non_negative_int, default=TuneSettings.steps, metavar="N",
                      help=f"optimizer steps (default {TuneSettings.steps}); 0 generates with --model as it is, "
                           "e.g. the model/ of an earlier --run-dir")
    tune.add_argument("--train-batch-size", type=positive_int, default=TuneSettings.batch_size, metavar="N",
                      help=f"windows per step (default {TuneSettings.batch_size})")
    tune.add_argument("--seq-len", type=positive_int, default=TuneSettings.seq_len, metavar="N",
                      help=f"tokens per training window (default {TuneSettings.seq_len}, or the model's context "
                           "if shorter)")
    tune.add_argument("--lr", type=float, default=TuneSettings.lr, metavar="LR",
                      help=f"learning rate (default {TuneSettings.lr:g})")
    tune.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                      help="keep the fine-tuning run here (metrics, loss curve, and the model in DIR/model, for "
                           "--steps 0 next time); default: a temporary folder, removed afterwards")
    add_generation_options(p, many=False)
    p.add_argument_group("samples and randomness").add_argument(
        "--batch-size", type=positive_int, default=None, metavar="N",
        help=f"rows generated (and classified, with --filter) per forward pass (default {ROWS_PER_BATCH})")
    add_device_options(p)
    p.set_defaults(run=run)


def default_out(data: Path) -> Path:
    if data.suffix in TABLES:
        return data.with_name(f"{data.stem}.augmented{data.suffix}")
    return data.with_name(f"{data.name}.augmented.csv")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    out = args.out or default_out(args.data)
    if out.suffix not in TABLES:
        raise AugmentationError(f"{out}: --out takes a .csv or .jsonl file name")
    if out.is_dir():
        raise AugmentationError(f"{out}: is a folder; --out takes a .csv or .jsonl file name")
    data = read_labelled(args.data, args.text_column, args.label_column)
    check_request(data, args.per_class, settings, args.max_tries, args.near_duplicate)
    device = "cpu" if args.backend == "onnxruntime" and args.device == "auto" else args.device
    keep = None
    if args.filter is not None:  # loaded first: a wrong classifier should not wait for the fine-tuning
        from gpt2kit.augmentation.filter import load_filter

        keep = load_filter(args.filter, data.label_names, device=args.device, dtype=DTYPES[args.dtype],
                           batch_size=args.batch_size or ROWS_PER_BATCH)
    tune = TuneSettings(steps=args.steps, batch_size=args.train_batch_size, seq_len=args.seq_len, lr=args.lr,
                        seed=0 if args.seed is None else args.seed, device=args.device)
    runtime = Runtime(device=device, dtype=DTYPES[args.dtype], backend=args.backend)
    result = augment_labelled(data, args.per_class, model=args.model, tune=tune, run_dir=args.run_dir,
                              settings=settings, runtime=runtime, near_duplicate=args.near_duplicate,
                              max_tries=args.max_tries, keep=keep)
    write_labelled(out, result.as_labelled(data, str(out)))
    print(result.table(), file=sys.stderr)
    for count in result.short:
        print(f"note: {count.label}: {count.kept} of {args.per_class} new examples after {count.generated} samples, "
              f"--max-tries {args.max_tries}: {count.advice()}", file=sys.stderr)
    print(f"wrote {len(result.texts)} new examples of {len(result.counts)} labels to {out}", file=sys.stderr)
    return 0
