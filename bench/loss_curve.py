"""bf16 autocast against fp32 over a real training run: do the loss curves match?

Trains the same preset from the same random weights on the same text twice with
`gpt2kit finetune` (same seed: same batches, same dropout masks), once in fp32 and once
with bf16 autocast, and prints both curves side by side with their differences.

    .venv/bin/python bench/loss_curve.py [--preset pocket] [--steps 200] [--data FILE]

The default data is the King James Bible of tests/fixtures (public domain).
"""

from __future__ import annotations

import argparse
import json
import lzma
import tempfile
from pathlib import Path

from gpt2kit.training import TrainConfig, finetune

BIBLE = Path(__file__).parents[1] / "tests" / "fixtures" / "kjv.txt.xz"


def curve(out: Path) -> dict[int, dict]:
    by_step: dict[int, dict] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_step.setdefault(row["step"], {}).update(row)  # the final evaluation has a record of its own
    return by_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="pocket")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=None, help="a text file (default: the KJV Bible)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "kjv.txt"
            data.write_bytes(lzma.decompress(BIBLE.read_bytes()))
        runs = {}
        for precision in ("fp32", "bf16"):
            out = Path(tmp) / precision
            finetune(TrainConfig(data=data, out=out, from_scratch=args.preset, seq_len=args.seq_len,
                                 batch_size=args.batch_size, max_steps=args.steps, base_lr=1e-3, warmup_steps=20,
                                 schedule="cosine", val_fraction=0.02, eval_every=max(1, args.steps // 4),
                                 eval_batches=8, precision=precision, cache_dir=Path(tmp) / "cache",
                                 progress=False))
            runs[precision] = curve(out)
    fp32, bf16 = runs["fp32"], runs["bf16"]
    steps = [s for s in fp32 if "loss" in fp32[s]]
    print(f"\n{args.preset} from scratch, seq {args.seq_len}, batch {args.batch_size}, {args.steps} steps\n")
    print("| step | fp32 loss | bf16 loss | difference | fp32 val | bf16 val |")
    print("|---|---|---|---|---|---|")
    every = max(1, len(steps) // 10)
    shown = sorted({steps[0], *steps[every - 1::every]})
    for s in shown:
        a, b = fp32[s], bf16[s]
        val = f"{a['val_loss']:.4f} | {b['val_loss']:.4f}" if "val_loss" in a else "- | -"
        print(f"| {s} | {a['loss']:.4f} | {b['loss']:.4f} | {b['loss'] - a['loss']:+.4f} | {val} |")
    gaps = [abs(fp32[s]["loss"] - bf16[s]["loss"]) for s in steps]
    tail = gaps[-every:]
    print(f"\nmax |difference| {max(gaps):.4f}; mean over the last {len(tail)} steps {sum(tail) / len(tail):.4f}; "
          f"final: fp32 {fp32[steps[-1]]['loss']:.4f}, bf16 {bf16[steps[-1]]['loss']:.4f}")


if __name__ == "__main__":
    main()
