"""`gpt2kit eval perplexity`, `gpt2kit eval rouge` and `gpt2kit eval classify`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpt2kit.atomic import atomic_write
from gpt2kit.cli.args import add_device_options, add_model_option, add_read_options, load_model, positive_int
from gpt2kit.cli.summarize import (
    add_article_input_options,
    add_recipe_generation_options,
    add_recipe_option,
    generation_kwargs,
)
from gpt2kit.data.articles import read_articles
from gpt2kit.data.labelled import read_labelled
from gpt2kit.evaluation.classification import evaluate_classifier, plot_confusion
from gpt2kit.evaluation.perplexity import perplexity_of_data
from gpt2kit.evaluation.rouge import METRICS, EvaluationError
from gpt2kit.evaluation.summaries import (
    comparison_table,
    read_predictions,
    rouge_of_model,
    score_records,
    write_records,
)
from gpt2kit.extras import MissingExtraError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure a model: perplexity of text, ROUGE of summaries, classification",
                       description="Measure a model.")
    kinds = p.add_subparsers(dest="measure", metavar="MEASURE", required=True, parser_class=type(p),
                             help="perplexity, rouge or classify")
    ppl = kinds.add_parser(
        "perplexity", help="perplexity, mean loss and bits per byte of text, with sliding windows",
        description="Perplexity of a model on any data `gpt2kit finetune` reads, documents joined by "
                    "<|endoftext|>: windows of the model's context, --stride tokens apart, each token scored once "
                    "with up to a full window of context before it (transformers' strided method).")
    add_model_option(ppl, required=False)
    add_read_options(ppl)
    ppl.add_argument("--data", type=Path, required=True, metavar="PATH",
                     help="text file, folder of files, .jsonl / .csv with a text column, or a gpt2kit token file")
    ppl.add_argument("--stride", type=positive_int, default=None, metavar="S",
                     help="tokens between window starts, 1 to the context (default: half the context); smaller "
                          "gives each token more context and costs context/S forward passes per window of text")
    ppl.add_argument("--batch-size", type=positive_int, default=4, metavar="B",
                     help="windows per forward pass (default 4)")
    ppl.add_argument("--max-tokens", type=positive_int, default=None, metavar="N",
                     help="score only the first N tokens of the data")
    ppl.add_argument("--text-column", default="text", metavar="NAME", help="field of .jsonl / .csv rows (default text)")
    ppl.add_argument("--errors", default="strict", choices=("strict", "replace"),
                     help="text that is not UTF-8: strict (refuse, default) or replace (U+FFFD)")
    ppl.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                     help="where tokenized data is cached (default ~/.cache/gpt2kit/tokens)")
    ppl.add_argument("--output", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    ppl.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_device_options(ppl)
    ppl.set_defaults(run=run_perplexity)

    rouge = kinds.add_parser(
        "rouge", help="ROUGE of a model's summaries (or of a predictions file), two published ways",
        description="ROUGE-1/2/L/Lsum F x100 and Rouge-AVG (mean of 1, 2, L) with bootstrap 95%% intervals, of "
                    "summaries a model writes for --data (with the recipe's prompt and decoding) or of a JSONL of "
                    "summary/reference pairs (--predictions). --metric rouge-score: Google's package with "
                    "stemming; --metric mindspore: the pltrdy rouge package's method on lowercased text, as "
                    "MindSpore GPT-2's table.")
    add_model_option(rouge, required=False)
    add_read_options(rouge)
    source = rouge.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, metavar="PATH",
                        help="articles with reference summaries: CNN/DailyMail .story folder, .jsonl/.csv/.parquet "
                             "table, article<TAB>summary file")
    source.add_argument("--predictions", type=Path, metavar="FILE",
                        help="score a JSONL of {summary, reference} records from any system instead")
    add_article_input_options(rouge)
    rouge.add_argument("--metric", default="rouge-score", choices=METRICS,
                       help="rouge-score (default: Google's, stemmed) or mindspore (pltrdy's method, lowercased)")
    rouge.add_argument("--compare", metavar="M0",
                       help="also evaluate this model (the zero-shot baseline) the same way and print the table "
                            "of both in Markdown")
    rouge.add_argument("--bootstrap", type=positive_int, default=1000, metavar="N",
                       help="resamplings for the 95%% confidence intervals (default 1000)")
    rouge.add_argument("--output", type=Path, default=None, metavar="FILE",
                       help="per-example JSONL: id, prompt, summary, reference and scores")
    rouge.add_argument("--json", type=Path, default=None, metavar="FILE", help="the averages and intervals as JSON")
    add_recipe_option(rouge)
    add_recipe_generation_options(rouge)
    add_device_options(rouge)
    rouge.set_defaults(run=run_rouge)

    cls = kinds.add_parser(
        "classify", help="accuracy, macro-F1, per-class scores and confusion matrix of a classifier",
        description="Score a classifier on labelled test data: accuracy, macro-F1, precision / recall / F1 / "
                    "support of each class, and the confusion matrix, printed as a table and drawn as a PNG.")
    add_model_option(cls)
    cls.add_argument("--data", type=Path, required=True, metavar="PATH",
                     help="labelled test data: .csv, .jsonl, or a folder with a sub-folder of text files per class")
    cls.add_argument("--text-column", default="text", metavar="NAME",
                     help="field of .csv / .jsonl rows holding the text (default text)")
    cls.add_argument("--label-column", default="label", metavar="NAME",
                     help="field of .csv / .jsonl rows holding the class (default label)")
    cls.add_argument("--batch-size", type=positive_int, default=32, metavar="B",
                     help="texts per forward pass (default 32)")
    cls.add_argument("--output", type=Path, default=None, metavar="FILE",
                     help="also write the scores and the confusion matrix as JSON")
    cls.add_argument("--predictions", type=Path, default=None, metavar="FILE",
                     help="also write each example's text, true label, predicted label and probabilities as JSONL")
    cls.add_argument("--plot", type=Path, default=None, metavar="PNG",
                     help="where to draw the confusion matrix (default: --output with .png, else confusion.png); "
                          "needs matplotlib (the plot extra), said in one line when missing")
    cls.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_options(cls, backends=False)
    cls.set_defaults(run=run_classify)


def run_perplexity(args: argparse.Namespace) -> int:
    loaded = load_model(args)
    result = perplexity_of_data(loaded.model, loaded.tokenizer, args.data, max_tokens=args.max_tokens,
                                stride=args.stride, batch_size=args.batch_size, text_column=args.text_column,
                                errors=args.errors, cache_dir=args.cache_dir, progress=not args.no_progress)
    context = loaded.model.config.n_positions
    stride = args.stride or max(1, context // 2)
    record = {"model": str(loaded.path), "backend": args.backend, "data": str(args.data), "context": context,
              "stride": stride, **result.to_dict()}
    if args.output is not None:
        atomic_write(args.output, json.dumps(record, indent=2) + "\n")
    print(f"perplexity {result.value:.4f}")
    print(f"mean loss {result.nll:.6f} nats per token")
    if result.bits_per_byte is not None:
        print(f"bits per byte {result.bits_per_byte:.4f} ({result.bytes:,} bytes)")
    print(f"tokens {result.tokens:,} scored (windows of {context}, stride {stride})", file=sys.stderr)
    return 0


def run_rouge(args: argparse.Namespace) -> int:
    options = dict(samples=args.bootstrap)
    if args.predictions is not None:
        if args.compare:
            raise EvaluationError("--compare evaluates two models on --data; it has nothing to compare with "
                                  "--predictions")
        report = score_records(read_predictions(args.predictions), args.metric, **options)
        reports = [(str(args.predictions), report)]
    else:
        settings = generation_kwargs(args)
        batch = settings.pop("batch_size", None) or 8
        articles = read_articles(args.data, source_column=args.source_column, target_column=args.target_column,
                                 limit=args.limit, seed=args.shuffle_seed, progress=True)
        reports = []
        for name in [args.model, args.compare] if args.compare else [args.model]:
            args.model = name
            loaded = load_model(args)
            reports.append((str(name or "default"), rouge_of_model(
                loaded.model, loaded.tokenizer, articles, metric=args.metric, recipe_name=args.recipe,
                batch_size=batch, progress=True, **options, **settings)))
        report = reports[0][1]
    if args.output is not None:
        write_records(args.output, report)
    if args.json is not None:
        atomic_write(args.json, json.dumps({name: r.to_dict() for name, r in reports}, indent=2) + "\n")
    if args.compare:
        labels = [f"{reports[0][0]} (fine-tuned)", f"{reports[1][0]} (zero-shot)"]
        print(comparison_table([(label, r) for label, (_, r) in zip(labels, reports, strict=True)],
                               str(args.data)))
        print(f"metric: {args.metric}; F x100, 95% bootstrap intervals in parentheses", file=sys.stderr)
        return 0
    print(f"{len(report.records):,} summaries, metric {args.metric} (F x100)")
    print("\n".join(report.lines()))
    return 0


def run_classify(args: argparse.Namespace) -> int:
    data = read_labelled(args.data, text_column=args.text_column, label_column=args.label_column)
    loaded = load_model(args, task="classify")
    report, predictions = evaluate_classifier(loaded.model, loaded.tokenizer, data, batch_size=args.batch_size,
                                              progress=not args.no_progress)
    print("\n".join(report.lines()))
    if args.output is not None:
        record = {"model": str(loaded.path), "data": str(args.data), **report.to_dict()}
        atomic_write(args.output, json.dumps(record, indent=2) + "\n")
    if args.predictions is not None:
        atomic_write(args.predictions, "".join(
            json.dumps({"text": text, "true": true, **p.to_dict()}, ensure_ascii=False) + "\n"
            for text, true, p in zip(data.texts, data.labels, predictions, strict=True)))
    plot = args.plot or (args.output.with_suffix(".png") if args.output is not None else Path("confusion.png"))
    try:
        plot_confusion(report, plot, title=f"{args.data.name}: accuracy {report.accuracy:.3f}, "
                                           f"macro-F1 {report.macro_f1:.3f}")
        print(f"confusion matrix drawn in {plot}", file=sys.stderr)
    except MissingExtraError as err:  # the scores stand without their picture
        print(f"note: no {plot.name}: {err}", file=sys.stderr)
    return 0
