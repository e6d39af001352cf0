"""Decode speed: gpt2kit vs transformers' generate() on the same random weights, interleaved run by run.

GPT-2 124M shape (random weights), greedy, a 32-token prompt, 128 new tokens with no stop on
end-of-text, batch 1 and 8, fp32 and bf16. Before anything is timed, each (dtype, batch) is
decoded once by both (also the warm-up) and the generated ids must be the same. Random weights
give nearly flat logits, so rounding may flip a near-tie: where the ids part, every id of each
side must still be within TIE_TOLERANCE (fp32 1e-3, bf16 0.1) of the largest logit of the other
implementation's plain forward pass over those ids. Otherwise nothing is timed (exit 2). Then
the two implementations take turns (transformers, gpt2kit, transformers, gpt2kit, ...) for
--repeats runs each. Prints a Markdown table of the median tokens/s with min-max over the runs
and the median and min-max of the per-round ratios, and writes every run's seconds, the checks
and the machine to a JSON file (default bench/results/decode.json).

    .venv/bin/python bench/decode.py [--batch 1 8] [--dtype fp32 bf16] [--repeats 5] [--json FILE]

gpt2kit runs as `gpt2kit generate` does on CPU: weights packed for oneDNN (pack_weights()),
one preallocated KV cache. transformers runs generate() as shipped (its default cache).
On a quiet 2-core AVX2 machine without native bf16, --dtype fp32 takes about 3 minutes; the
bf16 cells add roughly 45 (bf16 matrix products there run 10-40x slower than fp32; transformers'
bf16 batch 8 alone is over half an hour).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import benchkit
import torch
import transformers

from gpt2kit import GPT2, GPT2Config, generate

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# How far below the largest logit a greedy id may be, under the other implementation's forward
# pass, where the two implementations' ids part: rounding flips near-ties. Random weights give
# nearly flat logits (124M: std about 0.55, top-2 gaps down to 0.008 over 128 tokens), and the two
# implementations' bf16 logits differ by up to 0.04 (fp32: about 1e-5).
TIE_TOLERANCE = {"fp32": 1e-3, "bf16": 0.1}


def hf_decode(hf, prompt: torch.Tensor, batch: int, new_tokens: int) -> list[list[int]]:
    rows = prompt.expand(batch, -1)
    with torch.inference_mode():
        out = hf.generate(rows, attention_mask=torch.ones_like(rows), max_new_tokens=new_tokens, do_sample=False,
                          pad_token_id=hf.config.eos_token_id)
    if out.shape[1] != prompt.shape[1] + new_tokens:
        raise RuntimeError(f"transformers generated {out.shape[1] - prompt.shape[1]} tokens, not {new_tokens}")
    return out[:, prompt.shape[1]:].tolist()


def ours_decode(model: GPT2, prompt: torch.Tensor, batch: int, new_tokens: int) -> list[list[int]]:
    out = generate(model, prompt[0], max_new_tokens=new_tokens, temperature=0, num_samples=batch, eos_token_id=None)
    if any(len(row) != new_tokens for row in out):
        raise RuntimeError(f"gpt2kit generated {[len(r) for r in out]} tokens, not {new_tokens}")
    return out


def first_difference(a: list[list[int]], b: list[list[int]]) -> tuple[int, int] | None:
    """(row, step) of the first id where two generations differ, or None."""
    for row, (x, y) in enumerate(zip(a, b, strict=True)):
        for step, (s, t) in enumerate(zip(x, y, strict=True)):
            if s != t:
                return row, step
    return None


def argmax_gaps(logits_of, prompt: torch.Tensor, generated: list[int]) -> list[float]:
    """For each generated id: how far its logit is below the largest one, under a plain forward
    pass (no cache) of one implementation over the prompt and the generated ids."""
    seq = torch.cat([prompt[0], torch.tensor(generated)])
    with torch.inference_mode():
        logits = logits_of(seq[None])[0, prompt.shape[1] - 1:-1].float()
    chosen = logits.gather(1, torch.tensor(generated)[:, None])[:, 0]
    return (logits.max(dim=1).values - chosen).tolist()


def check_same_greedy(name: str, batch: int, hf, ours: GPT2, prompt: torch.Tensor, new_tokens: int,
                      tolerance: float) -> dict:
    """Both decode once (also the warm-up). The same ids pass. Where they differ, each side's
    ids must still be greedy choices under the other's forward pass, within `tolerance` of its
    largest logit (near-ties that rounding can flip); anything else refuses to time."""
    theirs, mine = hf_decode(hf, prompt, batch, new_tokens), ours_decode(ours, prompt, batch, new_tokens)
    where = first_difference(theirs, mine)
    if where is None:
        print(f"  {name} batch {batch}: same {batch} x {new_tokens} greedy ids", flush=True)
        return {"same_ids": True}
    forward = {"transformers": lambda ids: hf(input_ids=ids).logits, "gpt2kit": lambda ids: ours(ids)}
    worst = 0.0
    for judge, other, ids in (("gpt2kit", "transformers", theirs), ("transformers", "gpt2kit", mine)):
        for row in {tuple(r) for r in ids}:  # rows of one prompt: usually all alike
            gaps = argmax_gaps(forward[judge], prompt, list(row))
            worst = max(worst, max(gaps))
            if max(gaps) > tolerance:
                step = max(range(len(gaps)), key=gaps.__getitem__)
                benchkit.refuse(
                    f"{name} batch {batch}: greedy ids differ from row {where[0]}, new token {where[1]}, and "
                    f"{other}'s new token {step} is {gaps[step]:.2g} below the largest logit of {judge}'s "
                    f"forward pass (tolerance {tolerance:g})")
    print(f"  {name} batch {batch}: ids differ from row {where[0]}, new token {where[1]}, on near-ties: every id "
          f"of each side is within {worst:.2g} of the other's largest logit (tolerance {tolerance:g})", flush=True)
    return {"same_ids": False, "first_difference": {"row": where[0], "new_token": where[1]},
            "largest_gap_below_argmax": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="gpt2", help="size preset (default gpt2, the 124M shape)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--dtype", nargs="+", default=None, choices=sorted(DTYPES),
                        help="default: fp32, plus bf16 on CPUs with native bf16 matrix instructions")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each implementation per cell (>= 1)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed rounds before the timed ones (default 0: the check run warms each up)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and prompt")
    parser.add_argument("--json", type=Path, default=benchkit.RESULTS / "decode.json",
                        help="where the raw timings go (default bench/results/decode.json)")
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0 or min(args.batch) < 1 or args.new_tokens < 1 or args.prompt_len < 1:
        parser.error("--warmup must be >= 0; --repeats, --batch, --new-tokens and --prompt-len must be >= 1")
    machine, args.dtype = benchkit.checked_machine(args.dtype, "--dtype")
    config = GPT2Config.from_name(args.config)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    started = time.perf_counter()

    cells = []  # (dtype, batch, transformers model, gpt2kit model)
    with tempfile.TemporaryDirectory() as tmp:  # both load the same files
        torch.manual_seed(args.seed)
        hf_config = transformers.GPT2Config(**{k: v for k, v in config.to_hf_dict().items() if k != "architectures"})
        transformers.GPT2LMHeadModel(hf_config).save_pretrained(Path(tmp))
        prompt = torch.randint(0, config.vocab_size, (1, args.prompt_len),
                               generator=torch.Generator().manual_seed(args.seed + 1))
        for name in args.dtype:
            hf = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=DTYPES[name]).eval()
            hf.generation_config.eos_token_id = None  # no stop on end-of-text, as eos_token_id=None for gpt2kit
            ours = GPT2.from_pretrained(tmp, dtype=DTYPES[name])
            ours.pack_weights()  # what `gpt2kit generate` does on CPU
            cells += [(name, batch, hf, ours) for batch in args.batch]
        del hf, ours

    # the same computation first, or nothing is timed
    checks = [check_same_greedy(name, batch, hf, ours, prompt, args.new_tokens, TIE_TOLERANCE[name])
              for name, batch, hf, ours in cells]

    results = []
    for (name, batch, hf, ours), check in zip(cells, checks, strict=True):
        seconds = benchkit.interleave({
            "transformers": benchkit.stopwatch(lambda hf=hf, b=batch: hf_decode(hf, prompt, b, args.new_tokens)),
            "gpt2kit": benchkit.stopwatch(lambda ours=ours, b=batch: ours_decode(ours, prompt, b, args.new_tokens)),
        }, repeats=args.repeats, warmup=args.warmup)
        tokens = batch * args.new_tokens
        tps = {impl: benchkit.rates(s, tokens) for impl, s in seconds.items()}
        ratio = benchkit.summary(benchkit.paired_ratios(tps["gpt2kit"], tps["transformers"]))
        cell = {"dtype": name, "batch": batch, "tokens_per_run": tokens, "check": check, "seconds": seconds,
                "tokens_per_s": {impl: benchkit.summary(v) for impl, v in tps.items()}, "ratio": ratio}
        results.append(cell)
        print(f"  {name} batch {batch}: transformers {benchkit.spread(cell['tokens_per_s']['transformers'])} tok/s, "
              f"gpt2kit {benchkit.spread(cell['tokens_per_s']['gpt2kit'])} tok/s", flush=True)

    rows = [(c["dtype"], c["batch"], benchkit.spread(c["tokens_per_s"]["transformers"]),
             benchkit.spread(c["tokens_per_s"]["gpt2kit"]),
             f"{c['ratio']['median']:.2f}x ({c['ratio']['min']:.2f}-{c['ratio']['max']:.2f})") for c in results]
    print(f"\nDecode, {args.config} shape (random weights), prompt {args.prompt_len}, {args.new_tokens} new tokens, "
          f"greedy; median (min-max) of {args.repeats} interleaved runs each, ratio: median (min-max) of the "
          f"per-round ratios; {benchkit.describe(machine)}\n")
    print(benchkit.markdown_table(
        ["dtype", "batch", "transformers tok/s", "gpt2kit tok/s", "gpt2kit / transformers"], rows))
    path = benchkit.write_json(args.json, {
        "bench": "decode", "command": [Path(sys.executable).name, *sys.argv], "machine": machine,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "order": "per cell: warm-up/check run of each, then transformers, gpt2kit, transformers, gpt2kit, ...",
        "ratio": "per round: gpt2kit tok/s / transformers tok/s",
        "cells": results, "wall_seconds": round(time.perf_counter() - started, 1)})
    print(f"\nraw timings: {path}")


if __name__ == "__main__":
    main()
