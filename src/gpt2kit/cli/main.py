"""`gpt2kit` console script: subcommands are thin wrappers around library functions."""

from __future__ import annotations

import argparse
import os
import sys

from gpt2kit import __version__
from gpt2kit.cli import (
    augment,
    chat,
    classify,
    evaluate,
    export,
    finetune,
    generate,
    models,
    prepare,
    serve,
    summarize,
    weights,
)
from gpt2kit.errors import GPT2KitError

COMMANDS = (
    generate.add_parser, chat.add_parser, models.add_info_parser, models.add_init_parser,
    weights.add_convert_parser, weights.add_download_parser, prepare.add_parser, finetune.add_parser,
    export.add_parser, summarize.add_parser, classify.add_parser, evaluate.add_parser, serve.add_parser,
    augment.add_parser,
)


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the usage is one --help away), and no
    abbreviated options: `--length 20` must not quietly set `--length-penalty`."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)  # subcommand parsers are made by this class too
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        # under torchrun every rank parses the same command line: rank 0 alone says what is wrong
        self.exit(2, None if other_rank() else f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gpt2kit",
        description="A complete GPT-2 toolkit: model, tokenizer, weights and generation.",
    )
    parser.add_argument("--version", action="version", version=f"gpt2kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for add_parser in COMMANDS:
        add_parser(sub)
    return parser


def invocation() -> list[str]:
    """The words that start gpt2kit the way this process was started: the console script, or
    `python -m gpt2kit` (whose argv[0] is the package's __main__.py)."""
    first = sys.argv[0] if sys.argv else ""
    if os.path.basename(first) == "__main__.py":
        return [sys.executable, "-m", "gpt2kit"]
    return [first] if os.path.basename(first) == "gpt2kit" else ["gpt2kit"]


def other_rank() -> bool:
    """Whether torchrun started this process as a rank other than 0."""
    return "WORLD_SIZE" in os.environ and os.environ.get("RANK", "0") != "0"


def said_by_rank0(err: GPT2KitError) -> bool:
    """Whether this rank leaves user error `err` for rank 0 to print: every rank raised it alike,
    because it came from the command line before the ranks met (the same on each) or rank 0
    sent it to all. An error of this rank alone, a lost contact among them, is its own to print."""
    if not other_rank():
        return False
    distributed = sys.modules.get("gpt2kit.training.distributed")  # not imported: the ranks never met
    if distributed is None:
        return True
    return not isinstance(err, distributed.DistributedError) and (err.same_on_every_rank or not distributed.joined())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = [*invocation(), *(sys.argv[1:] if argv is None else argv)]  # to print a command to rerun
    try:
        code = args.run(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit-time flush
        return code
    except BrokenPipeError:  # e.g. `gpt2kit generate ... | head`: quiet, as Unix tools are
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # unwritten output goes nowhere
        return 0
    except GPT2KitError as err:
        if not said_by_rank0(err):
            rank = f"rank {os.environ['RANK']}: " if other_rank() and not str(err).startswith("rank ") else ""
            print(f"gpt2kit: error: {rank}{err}", file=sys.stderr)
        return 1
    except OSError as err:  # permissions, a full disk, a folder where a file was expected, ...
        where = f"{err.filename}: " if err.filename else ""
        print(f"gpt2kit: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gpt2kit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
