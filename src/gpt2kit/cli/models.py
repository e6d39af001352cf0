"""`gpt2kit info` and `gpt2kit init`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gpt2kit.cli.args import add_model_option, add_read_options, non_negative_int, read_options
from gpt2kit.config import ALIASES, PRESETS
from gpt2kit.errors import GPT2KitError
from gpt2kit.model import GPT2
from gpt2kit.weights.info import describe_model
from gpt2kit.weights.resolve import DEFAULT_NAME


def add_info_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show a model's config, parameter count, dtype and files",
                       description="Show a model's config, parameter count, stored dtype and files.")
    p.add_argument("model_arg", nargs="?", default=None, metavar="MODEL",
                   help="the model, as with --model (default: the small King James Bible model gpt2kit ships)")
    add_model_option(p, required=False)
    add_read_options(p)
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    if args.model_arg and args.model and args.model_arg != args.model:
        raise GPT2KitError(f"two models given ({args.model_arg} and --model {args.model}); name one")
    info = describe_model(args.model_arg or args.model or DEFAULT_NAME, **read_options(args))
    c = info["config"]
    print(f"model       {info['path']}")
    print(f"format      {info['format']}")
    origin = info["metadata"].get("origin") or info["metadata"].get("converted_from")
    if origin:
        print(f"origin      {origin}")
    print(f"parameters  {info['parameters']:,}")
    print(f"dtype       {info['dtype']}")
    if info["graph"]:
        g = info["graph"]
        print(f"graph       ONNX {g.get('variant', 'decoder')}{' (fused operators)' if g.get('fused') else ''}, "
              f"opset {g.get('opset', '?')} (run with --backend onnxruntime)")
    if info["run"]:
        r = info["run"]
        counter = "" if r["counter"] is None else f", counter {r['counter']}"
        print(f"run         {r['name']}: step {r['step']} loaded (saved steps: "
              f"{', '.join(map(str, r['saved_steps']))}){counter}")
    if info["note"]:
        print(f"note        {info['note']}")
    if info["head"]:
        head = info["head"]
        pooled = "last-token" if head.pooling == "last" else head.pooling
        print(f"classifier  {head.num_labels} classes ({', '.join(head.labels)}), {pooled} pooling")
    print(f"shape       {c.n_layer} layers, {c.n_head} heads, {c.n_embd} embedding, "
          f"{c.n_positions} context, {c.vocab_size} vocabulary")
    print("files")
    for name, size in info["files"].items():
        print(f"  {name:<28}{size:>14,} bytes")
    return 0


def add_init_parser(sub: argparse._SubParsersAction) -> None:
    names = ", ".join([*PRESETS, *ALIASES])
    p = sub.add_parser("init", help="write a model with random weights (for experiments and tests)",
                       description="Write a model folder with freshly initialised random weights.")
    p.add_argument("--config", required=True, metavar="NAME", help=f"size preset: {names}")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write the model to")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the initialisation (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of a model already in --out")
    p.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise GPT2KitError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
    model = GPT2.from_config(args.config, seed=args.seed)
    origin = f"random weights (gpt2kit init --config {args.config} --seed {args.seed})"
    model.save_pretrained(out, metadata={"origin": origin, "random_init": True})
    print(f"wrote {out}: {args.config}, {model.num_parameters():,} parameters, {origin}")
    return 0

