"""`gpt2kit summarize`: an article (streamed) or a file of them (batched) into summaries."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpt2kit.atomic import atomic_write
from gpt2kit.cli.args import add_device_options, add_model_option, add_read_options, load_model
from gpt2kit.cli.generation_options import add_generation_options, settings_from_args
from gpt2kit.data.articles import read_articles
from gpt2kit.summarization.recipes import DEFAULT_RECIPE, RECIPES
from gpt2kit.summarization.summarize import summarize, summarize_stream

RECIPE_DEFAULTS = {"max_new_tokens": "100", "top_k": "2"}  # the flags a recipe sets (all three: these values)


def add_recipe_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default=DEFAULT_RECIPE, choices=tuple(RECIPES),
                   help="prompt and post-processing: mindspore (default; article cut at its last sentence end + "
                        "' TL;DR:', summary up to its third '.'), gpt2-paper (article + '\\nTL;DR:', first 3 "
                        "sentences) or tf2 (article + '\\nTL;DR:\\n', first 3 sentences); all sample with top-k 2, "
                        "100 new tokens unless told otherwise")


def add_recipe_generation_options(p: argparse.ArgumentParser) -> None:
    """The generate flags, with the recipe's decoding as the default of those it sets."""
    add_generation_options(p)
    for action in p._actions:
        if action.dest in RECIPE_DEFAULTS:
            action.default = None
            action.help = action.help.split(" (default")[0].split("; 0 disables")[0] + \
                f" (default: the recipe's, {RECIPE_DEFAULTS[action.dest]})"


def add_article_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source-column", default="article", metavar="NAME",
                   help="article column of .jsonl / .csv / .parquet input (default article)")
    p.add_argument("--target-column", default="highlights", metavar="NAME",
                   help="reference summary column (default highlights)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="the first N articles only")
    p.add_argument("--shuffle-seed", type=int, default=None, metavar="S",
                   help="take the --limit articles after a shuffle with this seed (default: file order)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summarize", help="summarize articles with a GPT-2 (TL;DR: prompting, the published recipes)",
        description="Summarize one article (--text, streamed) or a file of them (--input: CNN/DailyMail .story "
                    "folders, .jsonl/.csv/.parquet tables, article<TAB>summary files), batched, with the prompt, "
                    "decoding and post-processing of a published GPT-2 recipe; every generate flag overrides it.")
    add_model_option(p, required=False)
    add_read_options(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="ARTICLE", help="one article, summarized as it is generated")
    source.add_argument("--input", type=Path, metavar="PATH", help="a file or folder of articles")
    add_article_input_options(p)
    p.add_argument("--output", type=Path, default=None, metavar="FILE",
                   help="write JSONL records (id, prompt, generated, summary, reference) instead of printing")
    add_recipe_option(p)
    add_recipe_generation_options(p)
    add_device_options(p)
    p.set_defaults(run=run)


def generation_kwargs(args: argparse.Namespace) -> dict:
    """The generate flags as settings, the recipe's decoding where a flag was not given."""
    chosen = RECIPES[args.recipe]
    for name in RECIPE_DEFAULTS:
        if getattr(args, name) is None:
            setattr(args, name, getattr(chosen, name))
    return dict(vars(settings_from_args(args)))


def run(args: argparse.Namespace) -> int:
    settings = generation_kwargs(args)
    if args.text is not None:
        loaded = load_model(args)
        _, pieces = summarize_stream(loaded.model, loaded.tokenizer, args.text, recipe_name=args.recipe, **settings)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    articles = read_articles(args.input, source_column=args.source_column, target_column=args.target_column,
                             limit=args.limit, seed=args.shuffle_seed, progress=True)
    loaded = load_model(args)
    batch = settings.pop("batch_size", None) or 8
    summaries = summarize(loaded.model, loaded.tokenizer, [a.article for a in articles], recipe_name=args.recipe,
                          batch_size=batch, progress=True, **settings)
    if args.output is None:
        for article, s in zip(articles, summaries, strict=True):
            print(f"{article.id}\t{s.summary}")
        return 0
    records = [{"id": a.id, "prompt": s.prompt, "generated": s.generated, "summary": s.summary,
                "reference": a.summary} for a, s in zip(articles, summaries, strict=True)]
    atomic_write(args.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    print(f"wrote {len(records)} summaries to {args.output}", file=sys.stderr)
    return 0
