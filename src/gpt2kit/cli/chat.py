"""`gpt2kit chat`: an interactive prompt loop.

Each line typed is a prompt of its own, continued as one streamed sample; GPT-2 is a text
continuer, not a chat model, and earlier lines are not part of the next prompt. Line editing
and history come from readline. `/name value` changes a generation setting for the rest of
the session; Ctrl-C stops the current generation and keeps the session;
Ctrl-D (or /quit) leaves.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TextIO

from gpt2kit.backends import Decoder
from gpt2kit.cli.args import add_device_options, add_model_option, add_read_options, load_model
from gpt2kit.cli.generation_options import add_generation_options, settings_from_args, unescape
from gpt2kit.errors import GPT2KitError
from gpt2kit.generation import GenerationSettings, stream
from gpt2kit.tokenizer import Tokenizer

# Settings that can be changed from the prompt, with the type of their values.
CHANGEABLE = {
    "temperature": float, "top_k": int, "top_p": float, "typical_p": float, "min_p": float,
    "max_new_tokens": int, "min_new_tokens": int, "repetition_penalty": float, "frequency_penalty": float,
    "presence_penalty": float, "no_repeat_ngram_size": int, "seed": int, "sampler": str,
}
HELP = """commands:
  /settings              show the current settings
  /NAME VALUE            change a setting, e.g. /temperature 0.7, /top_k 40, /seed none
                         settings: {names}
  /stop TEXT             add a stop string, with escapes such as \\n (/stop alone clears them)
  /help                  this text
  /quit                  leave (or Ctrl-D); Ctrl-C stops a generation in progress"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="prompt loop: each line you type is continued, streamed as it is generated",
                       description="Type a prompt, get a streamed continuation of it. Each line is a prompt of "
                                   "its own: the model does not see earlier lines (GPT-2 continues text; it is "
                                   "not a chat model). One sample per line: for several samples or beam search "
                                   "use `gpt2kit generate`. /help lists the commands.")
    add_model_option(p, required=False)
    add_read_options(p)
    add_generation_options(p, many=False)
    add_device_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    loaded = load_model(args)
    return chat_loop(loaded.model, loaded.tokenizer, settings)


def chat_loop(model: Decoder, tokenizer: Tokenizer, settings: GenerationSettings, out: TextIO = sys.stdout) -> int:
    try:
        import readline  # noqa: F401 - importing it gives input() line editing and history
    except ImportError:  # not on every platform
        pass
    out.write("gpt2kit chat: each line you type is continued on its own (earlier lines are not part of it); "
              "/help for commands, Ctrl-D to leave\n")
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            out.write("\n")
            return 0
        except KeyboardInterrupt:
            out.write("\n")
            continue
        if not line.strip():
            continue
        if line.startswith("/"):
            try:
                result = command(line, settings, out)
            except GPT2KitError as err:
                out.write(f"error: {err}\n")
                continue
            if result is None:
                return 0
            settings = result
            continue
        try:
            for event in stream(model, tokenizer, line, **vars(settings)):
                if event.text:
                    out.write(event.text)
                    out.flush()
            out.write("\n")
        except KeyboardInterrupt:
            out.write("\n[interrupted]\n")
        except GPT2KitError as err:
            out.write(f"error: {err}\n")


def command(line: str, settings: GenerationSettings, out: TextIO) -> GenerationSettings | None:
    """Apply one /command; the new settings, or None to leave."""
    name, _, value = line[1:].strip().partition(" ")
    name, value = name.replace("-", "_"), value.strip()
    if name in ("quit", "exit", "q"):
        return None
    if name == "help":
        out.write(HELP.format(names=", ".join(CHANGEABLE)) + "\n")
        return settings
    if name == "settings":
        for key in (*CHANGEABLE, "stop"):
            out.write(f"  {key} = {getattr(settings, key)!r}\n")
        return settings
    if name == "stop":
        new = dataclasses.replace(settings, stop=(*settings.stop, unescape(value)) if value else ())
        out.write(f"stop = {list(new.stop)!r}\n")
        return new
    if name not in CHANGEABLE:
        out.write(f"unknown command /{name}; /help lists them\n")
        return settings
    if not value:
        out.write(f"{name} = {getattr(settings, name)!r}\n")
        return settings
    try:
        parsed = None if value.lower() == "none" and name == "seed" else CHANGEABLE[name](value)
    except ValueError:
        out.write(f"error: {name} takes a {CHANGEABLE[name].__name__}, got {value!r}\n")
        return settings
    new = dataclasses.replace(settings, **{name: parsed})  # validated by GenerationSettings
    out.write(f"{name} = {parsed!r}\n")
    return new
