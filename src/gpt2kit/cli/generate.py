"""`gpt2kit generate`: text from a model, streamed as it is produced, or written to JSONL."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gpt2kit.cli.args import DTYPES, add_device_options, add_model_option, resolve_device
from gpt2kit.cli.generation_options import add_generation_options, settings_from_args
from gpt2kit.errors import GenerationError
from gpt2kit.generation import GenerationSettings, complete, stream
from gpt2kit.model import GPT2
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.weights.resolve import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate text from prompts (or unconditionally)",
        description="Generate text. Without --prompt or --prompt-file, samples are unconditional "
                    "(they start from <|endoftext|>).",
    )
    add_model_option(p, required=False)
    src = p.add_argument_group("prompts and output")
    src.add_argument("--prompt", default=None, metavar="TEXT", help="text to continue")
    src.add_argument("--prompt-file", type=Path, default=None, metavar="FILE",
                     help="a UTF-8 file with one prompt per line (blank lines are skipped); prompts run as a batch")
    src.add_argument("--unconditional", action="store_true",
                     help="ignore prompts and sample from <|endoftext|> (the default when no prompt is given)")
    src.add_argument("--output", type=Path, default=None, metavar="FILE",
                     help="write JSONL (- for stdout): one line per sample with prompt, text, token_ids, "
                          "finish_reason and settings")
    src.add_argument("--interactive", action="store_true", help="a prompt loop instead (same as `gpt2kit chat`)")
    add_generation_options(p)
    add_device_options(p)
    p.set_defaults(run=run)


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.unconditional:
        return [""]
    if args.prompt_file is not None:
        if args.prompt is not None:
            raise GenerationError("give --prompt or --prompt-file, not both")
        path: Path = args.prompt_file
        if not path.is_file():
            raise GenerationError(f"{path}: prompt file not found")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise GenerationError(f"{path}: prompt file is not UTF-8 text") from None
        prompts = [line for line in lines if line.strip()]
        if not prompts:
            raise GenerationError(f"{path}: prompt file holds no prompts")
        return prompts
    return [args.prompt or ""]


def load(args: argparse.Namespace) -> tuple[GPT2, Tokenizer]:
    name = args.model or str(DEFAULT_MODEL)
    model = GPT2.from_pretrained(name, dtype=DTYPES[args.dtype], device=resolve_device(args.device))
    model.pack_weights()  # faster CPU decoding; a no-op elsewhere
    note_model(model, args.model)
    return model, Tokenizer.for_model(model.source)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.interactive:
        from gpt2kit.cli.chat import chat_loop

        model, tokenizer = load(args)
        return chat_loop(model, tokenizer, settings)
    prompts = read_prompts(args)
    model, tokenizer = load(args)
    streaming = (len(prompts) == 1 and settings.num_samples == 1 and settings.num_beams == 1
                 and args.output is None)
    if streaming:
        sys.stdout.write(prompts[0])
        sys.stdout.flush()
        for piece in stream(model, tokenizer, prompts[0], **vars(settings)):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    completions = complete(model, tokenizer, prompts, **vars(settings))
    if args.output is not None:
        write_jsonl(args.output, completions, settings)
        if str(args.output) != "-":
            print(f"wrote {len(completions)} samples to {args.output}", file=sys.stderr)
        return 0
    per_prompt = len(completions) // len(prompts)
    for i, c in enumerate(completions):
        label = f"sample {i % per_prompt + 1}" + (f" of prompt {i // per_prompt + 1}" if len(prompts) > 1 else "")
        print(f"======== {label} ========")
        print(c.prompt + c.text)
    return 0


def write_jsonl(path: Path, completions, settings: GenerationSettings) -> None:
    """One JSON object per sample, to stdout for "-"; a file is written under a temporary name
    and renamed, so it is never half-written."""
    recorded = settings.to_dict()
    lines = [json.dumps({"prompt": c.prompt, "text": c.text, "token_ids": c.token_ids,
                         "finish_reason": c.finish_reason, "settings": recorded}, ensure_ascii=False) + "\n"
             for c in completions]
    if str(path) == "-":
        sys.stdout.writelines(lines)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def note_model(model: GPT2, name: str | None) -> None:
    """Say on stderr which model speaks (name None: the shipped default), and warn when its weights are random."""
    origin = model.metadata.get("origin")
    label = " — ".join(x for x in (name, origin) if x) or "gpt2kit's default model"
    print(f"model: {label}", file=sys.stderr)
    if model.metadata.get("random_init"):
        print("note: this model has random, untrained weights, so its text is noise; "
              "it stands in until gpt2kit ships a trained model", file=sys.stderr)
