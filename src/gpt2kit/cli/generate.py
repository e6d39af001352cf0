"""`gpt2kit generate`: text from a model, printed as it is produced."""

from __future__ import annotations

import argparse
import sys

from gpt2kit.cli.args import (
    DTYPES,
    add_device_options,
    add_model_option,
    non_negative_int,
    positive_int,
    resolve_device,
)
from gpt2kit.generation import GenerationSettings, decode
from gpt2kit.model import GPT2
from gpt2kit.tokenizer import Tokenizer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate text from a prompt (or unconditionally)",
        description="Generate text. Without --prompt, samples are unconditional (they start from <|endoftext|>).",
    )
    add_model_option(p)
    p.add_argument("--prompt", default=None, metavar="TEXT", help="text to continue; omit for unconditional samples")
    p.add_argument("--max-new-tokens", type=non_negative_int, default=100, metavar="N",
                   help="tokens to generate per sample (default 100)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="softmax temperature; 0 means greedy decoding (default 1.0)")
    p.add_argument("--top-k", type=int, default=0, metavar="K",
                   help="sample only from the K most likely tokens; 0 disables (default 0)")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P",
                   help="nucleus sampling: the smallest token set with probability >= P, in (0, 1]; 1 disables")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed, for reproducible samples")
    p.add_argument("--num-samples", type=positive_int, default=1, metavar="N",
                   help="how many samples to generate, in one batch (default 1)")
    p.add_argument("--no-stop", action="store_true", help="keep generating past <|endoftext|>")
    add_device_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        num_samples=args.num_samples, seed=args.seed, eos_token_id=None if args.no_stop else 50256,
    )
    model = GPT2.from_pretrained(args.model, dtype=DTYPES[args.dtype], device=resolve_device(args.device))
    tokenizer = Tokenizer.from_pretrained(model.source)
    note_model(model, args.model)
    prompt = args.prompt or ""
    ids = tokenizer.encode(prompt) if prompt else [tokenizer.eot_id]
    texts = [prompt] * settings.num_samples
    decoders = [tokenizer.incremental_decoder() for _ in texts]
    live = settings.num_samples == 1  # one sample streams to the terminal as it grows
    if live:
        sys.stdout.write(prompt)
        sys.stdout.flush()
    done = [False] * settings.num_samples
    for step in decode(model, ids, settings):
        for row, token in enumerate(step.tolist()):
            if done[row] or token == settings.eos_token_id:
                done[row] = True
                continue
            piece = decoders[row].add(token)
            texts[row] += piece
            if live and piece:
                sys.stdout.write(piece)
                sys.stdout.flush()
    for row, dec in enumerate(decoders):
        tail = dec.flush()
        texts[row] += tail
        if live:
            sys.stdout.write(tail + "\n")
    if not live:
        for i, text in enumerate(texts, 1):
            print(f"======== sample {i} ========")
            print(text)
    return 0


def note_model(model: GPT2, name: str) -> None:
    """Say on stderr which model speaks, and warn when its weights are random."""
    origin = model.metadata.get("origin")
    print(f"model: {name}" + (f" ({origin})" if origin else ""), file=sys.stderr)
    if model.metadata.get("random_init"):
        print("note: this model has random, untrained weights, so its text is noise; "
              "it stands in until gpt2kit ships a trained model", file=sys.stderr)


