"""Generation flags shared by `gpt2kit generate` and `gpt2kit chat`, and their mapping to settings."""

from __future__ import annotations

import argparse
import re

from gpt2kit.cli.args import non_negative_int, positive_int
from gpt2kit.errors import GenerationError
from gpt2kit.generation import GenerationSettings
from gpt2kit.generation.logprobs import MAX_TOP
from gpt2kit.generation.settings import FROM_MODEL, SAMPLERS

ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.?)", re.DOTALL)
ESCAPES_HELP = ("escapes: \\n newline, \\t tab, \\r carriage return, \\\\ backslash, "
                "\\uXXXX or \\UXXXXXXXX any character")


def id_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token ids, got {text!r}") from None


def unescape(text: str) -> str:
    """A stop string as a shell user types it: backslash escapes become the characters they name
    (a shell passes `'\\n'` as a backslash and an n). Unknown escapes are refused, so that a
    literal backslash is always written `\\\\`."""

    def one(match: re.Match) -> str:
        code = match.group(1)
        if not code:
            raise GenerationError(f"stop string '{text}' ends in a lone backslash; write \\\\ for a backslash")
        if code in ("u", "U"):
            digits = 4 if code == "u" else 8
            raise GenerationError(f"stop string '{text}': \\{code} takes {digits} hex digits")
        if len(code) > 1:
            value = int(code[1:], 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise GenerationError(f"stop string '{text}': \\{code} is not a character")
            return chr(value)
        if code not in ESCAPES:
            raise GenerationError(f"stop string '{text}': unknown escape \\{code} (known: \\n \\t \\r \\\\ "
                                  "\\uXXXX); write \\\\ for a backslash")
        return ESCAPES[code]

    return ESCAPE.sub(one, text)


def early_stopping(text: str) -> bool | str:
    value = {"true": True, "false": False, "never": "never"}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true, false or never, got {text!r}")
    return value


def add_generation_options(p: argparse.ArgumentParser, *, many: bool = True) -> None:
    """The flags of both commands; `many` adds beam search and several samples per prompt,
    which `gpt2kit generate` has and chat (one streamed answer at a time) does not."""
    g = p.add_argument_group("length and stopping")
    g.add_argument("--max-new-tokens", type=non_negative_int, default=100, metavar="N",
                   help="tokens to generate per sample (default 100); past the model's context the window slides")
    g.add_argument("--max-length", type=positive_int, default=None, metavar="N",
                   help="limit on prompt + generated tokens (the smaller of the two limits wins)")
    g.add_argument("--min-new-tokens", type=non_negative_int, default=0, metavar="N",
                   help="ban end-of-text and stop tokens until N tokens are generated (default 0)")
    g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help=f"stop when TEXT appears in the output, which is cut before it; repeatable; {ESCAPES_HELP}")
    g.add_argument("--stop-token-ids", type=id_list, default=[], metavar="IDS",
                   help="comma-separated token ids that end a sample, like <|endoftext|>")
    g.add_argument("--no-stop", action="store_true", help="keep generating past <|endoftext|>")

    s = p.add_argument_group("choosing tokens")
    s.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="softmax temperature; 0 means greedy decoding (default 1.0)" + (
                       "; beam search ignores it unless --do-sample" if many else ""))
    s.add_argument("--top-k", type=int, default=0, metavar="K",
                   help="sample only from the K most likely tokens; 0 disables (default 0)")
    s.add_argument("--top-p", type=float, default=1.0, metavar="P",
                   help="nucleus sampling: the smallest token set with probability >= P, in (0, 1]; 1 disables")
    s.add_argument("--typical-p", type=float, default=1.0, metavar="P",
                   help="locally typical sampling mass, in (0, 1]; 1 disables")
    s.add_argument("--min-p", type=float, default=0.0, metavar="P",
                   help="drop tokens less likely than P x the most likely one, in [0, 1); 0 disables")
    s.add_argument("--sampler", choices=SAMPLERS, default="multinomial",
                   help="how to draw from the distribution: multinomial, or gumbel (Gumbel-max trick)")
    s.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                   help="divide the logits of tokens already present by R (CTRL's penalty); 1 disables")
    s.add_argument("--frequency-penalty", type=float, default=0.0, metavar="F",
                   help="subtract F per earlier occurrence of a generated token (default 0)")
    s.add_argument("--presence-penalty", type=float, default=0.0, metavar="F",
                   help="subtract F from every token generated before (default 0)")
    s.add_argument("--no-repeat-ngram-size", type=non_negative_int, default=0, metavar="N",
                   help="never repeat an n-gram of N tokens; 0 disables")
    s.add_argument("--bad-token-ids", type=id_list, default=[], metavar="IDS",
                   help="comma-separated token ids never to generate")

    if many:  # records with log-probabilities are written by generate --output; chat only prints text
        o = p.add_argument_group("reporting")
        o.add_argument("--logprobs", type=non_negative_int, default=None, metavar="N",
                       help="write each token's log-probability under the model, and its N likeliest alternatives "
                            f"(0..{MAX_TOP}), into the JSONL records of --output")

    r = p.add_argument_group("samples and randomness")
    r.add_argument("--seed", type=int, default=None, metavar="S", help="random seed, for reproducible samples")
    if not many:
        return
    r.add_argument("--num-samples", type=int, default=1, metavar="N", help="samples per prompt (default 1)")
    r.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="samples per forward pass (default: all at once)")

    b = p.add_argument_group("beam search")
    b.add_argument("--num-beams", type=int, default=1, metavar="N",
                   help="beam width; 1 (default) means no beam search")
    b.add_argument("--length-penalty", type=float, default=1.0, metavar="L",
                   help="beam score = log-probability / length ** L (default 1.0; > 1 favours longer outputs)")
    b.add_argument("--early-stopping", type=early_stopping, default=False, metavar="{true,false,never}",
                   help="when beam search ends: true (once num-beams hypotheses finished), false (heuristic, "
                        "default), never (only when no better hypothesis is possible)")
    b.add_argument("--num-return-sequences", type=int, default=1, metavar="N",
                   help="best beams returned per prompt, <= num-beams (default 1)")
    b.add_argument("--do-sample", action="store_true", default=None,
                   help="beam sampling: draw the beams' candidates at random (with --temperature, --top-k, ...); "
                        "without it beam search is deterministic, as in transformers")


def settings_from_args(args: argparse.Namespace) -> GenerationSettings:
    """Validated settings: an invalid value stops here, before the model is loaded."""
    many = dict(num_beams=1, length_penalty=1.0, early_stopping=False, num_return_sequences=1, do_sample=None,
                num_samples=1, batch_size=None)
    many = {name: getattr(args, name, default) for name, default in many.items()}  # absent in chat
    logprobs = getattr(args, "logprobs", None)  # absent in chat
    if logprobs is not None and getattr(args, "output", None) is None:
        raise GenerationError("--logprobs goes into JSONL records, which streamed or printed text has no room "
                              "for: use gpt2kit generate with --output FILE (or --output - for stdout)")
    if many["num_samples"] < 1:
        raise GenerationError(f"num-samples must be an integer >= 1, got {many['num_samples']}")
    return GenerationSettings(
        max_new_tokens=args.max_new_tokens, max_length=args.max_length, min_new_tokens=args.min_new_tokens,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, typical_p=args.typical_p,
        min_p=args.min_p, sampler=args.sampler, repetition_penalty=args.repetition_penalty,
        frequency_penalty=args.frequency_penalty, presence_penalty=args.presence_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size, bad_token_ids=args.bad_token_ids,
        eos_token_id=None if args.no_stop else FROM_MODEL, stop_token_ids=args.stop_token_ids,
        stop=[unescape(s) for s in args.stop], seed=args.seed, logprobs=logprobs, **many,
    )
