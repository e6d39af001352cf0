"""`gpt2kit generate`: text from a model, streamed as it is produced, or written to JSONL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt2kit.cli.args import add_device_options, add_model_option, add_read_options, load_model
from gpt2kit.cli.generation_options import add_generation_options, settings_from_args
from gpt2kit.errors import GenerationError
from gpt2kit.generation import GenerationSettings, complete, stream
from gpt2kit.generation.records import completion_records, write_jsonl
from gpt2kit.generation.special_ids import special_ids


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate text from prompts (or unconditionally)",
        description="Generate text. Without --prompt or --prompt-file, samples are unconditional "
                    "(they start from <|endoftext|>). Without --num-beams, tokens are sampled "
                    "(--temperature 0: greedy); beam search is deterministic unless --do-sample.",
    )
    add_model_option(p, required=False)
    add_read_options(p)
    src = p.add_argument_group("prompts and output")
    src.add_argument("--prompt", default=None, metavar="TEXT", help="text to continue")
    src.add_argument("--prompt-file", type=Path, default=None, metavar="FILE",
                     help="a UTF-8 file with one prompt per line (blank lines are skipped); prompts run as a batch")
    src.add_argument("--unconditional", action="store_true",
                     help="sample from <|endoftext|>, with no prompt (the default when no prompt is given; "
                          "refused with --prompt or --prompt-file)")
    src.add_argument("--output", type=Path, default=None, metavar="FILE",
                     help="write JSONL (- for stdout): one line per sample with prompt, text, token_ids, "
                          "finish_reason and settings")
    src.add_argument("--interactive", action="store_true",
                     help="a prompt loop instead, the same as `gpt2kit chat`: each line is continued on its own, "
                          "one streamed sample at a time (no beams, no --num-samples)")
    add_generation_options(p)
    add_device_options(p)
    p.set_defaults(run=run)


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.unconditional:
        given = [flag for flag, value in (("--prompt", args.prompt), ("--prompt-file", args.prompt_file)) if value]
        if given:
            raise GenerationError(f"--unconditional samples start from <|endoftext|>, without a prompt: drop "
                                  f"{' and '.join(given)} (or drop --unconditional)")
        return [""]
    if args.prompt_file is not None:
        if args.prompt is not None:
            raise GenerationError("give --prompt or --prompt-file, not both")
        path: Path = args.prompt_file
        if path.is_dir():
            raise GenerationError(f"{path}: is a folder; --prompt-file takes a text file with one prompt per line")
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


def check_interactive(args: argparse.Namespace) -> None:
    """--interactive streams one sample of each typed line: refuse what it would ignore."""
    given = [flag for flag, value in (("--prompt", args.prompt), ("--prompt-file", args.prompt_file),
                                      ("--unconditional", args.unconditional), ("--output", args.output),
                                      ("--num-samples", args.num_samples != 1), ("--num-beams", args.num_beams != 1),
                                      ("--num-return-sequences", args.num_return_sequences != 1)) if value]
    if given:
        raise GenerationError(f"--interactive continues the lines you type, one streamed sample each: drop "
                              f"{', '.join(given)} (or drop --interactive)")


def check_output(path: Path | None) -> None:
    if path is not None and str(path) != "-" and path.is_dir():
        raise GenerationError(f"{path}: is a folder; --output takes a file name (or - for stdout)")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.interactive:
        from gpt2kit.cli.chat import chat_loop

        check_interactive(args)
        loaded = load_model(args)
        return chat_loop(loaded.model, loaded.tokenizer, settings)
    prompts = read_prompts(args)
    check_output(args.output)
    loaded = load_model(args)
    model, tokenizer = loaded.model, loaded.tokenizer
    settings = settings.for_model(special_ids(model))  # the ids the JSONL records are the ones used
    streaming = (len(prompts) == 1 and settings.num_samples == 1 and settings.num_beams == 1
                 and args.output is None)
    if streaming:
        events = stream(model, tokenizer, prompts[0], **vars(settings))  # checks the prompt and settings
        sys.stdout.write(prompts[0])
        sys.stdout.flush()
        for event in events:
            if event.text:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    completions = complete(model, tokenizer, prompts, **vars(settings))
    if args.output is not None:
        write_jsonl(args.output, completion_records(completions, settings))
        if str(args.output) != "-":
            noun = {"greedy": "greedy completion"}.get(kind(settings), kind(settings))
            print(f"wrote {plural(len(completions), noun)} to {args.output}", file=sys.stderr)
        return 0
    per_prompt = len(completions) // len(prompts)
    for i, c in enumerate(completions):
        label = f"{kind(settings)} {i % per_prompt + 1}" + (
            f" of prompt {i // per_prompt + 1}" if len(prompts) > 1 else "")
        print(f"======== {label} ========")
        print(c.prompt + c.text)
    return 0


def kind(settings: GenerationSettings) -> str:
    """What each output is: a beam (best first), a random sample, or the greedy continuation."""
    if settings.num_beams > 1:
        return "beam"
    return "sample" if settings.sampling else "greedy"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


