"""`gpt2kit prepare`: tokenize a corpus into a shard folder that `finetune --data DIR` trains from."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gpt2kit.data.prepare import DEFAULT_SHARD_TOKENS, prepare


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="tokenize a large corpus into numbered token shards, with several worker processes",
        description="Tokenize text (a file, a folder of files, .jsonl/.csv with a text column) with GPT-2's "
                    "vocabulary into DIR/shard-NNNNNN.tokens and DIR/manifest.json, streamed and resumable: "
                    "run the same command again after a kill to continue. Train with `gpt2kit finetune --data DIR`.")
    p.add_argument("--data", type=Path, required=True, metavar="SRC", help="the corpus (file or folder)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the shard folder (new, empty, or one to "
                   "continue)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help=f"tokenizing processes (default: the CPU count, {os.cpu_count()})")
    p.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, metavar="N",
                   help=f"tokens per shard (default {DEFAULT_SHARD_TOKENS:,}: 200 MB files)")
    p.add_argument("--text-column", default="text", metavar="NAME", help="field of .jsonl / .csv rows (default text)")
    p.add_argument("--errors", default="strict", choices=("strict", "replace"),
                   help="text that is not UTF-8: strict (refuse, default) or replace (U+FFFD)")
    p.set_defaults(run=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    result = prepare(args.data, args.out, workers=args.workers, shard_tokens=args.shard_tokens,
                     text_column=args.text_column, errors=args.errors, progress=sys.stderr.isatty())
    if result.new_tokens == 0:
        print(f"{result.out}: already prepared: {result.tokens:,} tokens in {result.shards} shards")
    else:
        print(f"{result.out}: {result.tokens:,} tokens of {result.documents:,} documents in {result.shards} shard"
              f"{'s' * (result.shards != 1)}; train with `gpt2kit finetune --data {result.out}`")
    return 0
