"""`gpt2kit eval perplexity` (and the other measurements of a model)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpt2kit.atomic import atomic_write
from gpt2kit.cli.args import add_device_options, add_model_option, add_read_options, load_model, positive_int
from gpt2kit.evaluation.perplexity import perplexity_of_data


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure a model: perplexity of text, ROUGE of summaries",
                       description="Measure a model.")
    kinds = p.add_subparsers(dest="measure", metavar="MEASURE", required=True, parser_class=type(p),
                             help="perplexity or rouge")
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
