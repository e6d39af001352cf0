"""Distributed training on this machine: tokens/s and peak memory per rank, 1 process vs DDP vs FSDP.

Each setting trains the same shape from random weights (default the 355M one, GPT-2 medium) on
the KJV text with gpt2kit's Trainer (the code `gpt2kit finetune` runs): one process without
torchrun, then `torchrun --nproc-per-node 2` with DDP and with FSDP (--fsdp). Each rank keeps
--batch-size windows of --seq-len tokens per step, so 2 ranks train twice the tokens per step.
After --warmup untimed steps, --steps optimizer steps are timed on every rank (forward,
backward, gradient all-reduce or reduce-scatter, clipping, AdamW); the table gives the median
global tokens/s and each rank's peak RSS (weights, gradients, AdamW moments, activations: DDP
holds all of them on every rank, FSDP a half of the first three on each of 2), and the peak
once the Trainer is set up (the model built: whole on every rank for DDP; for FSDP on the meta
device, rank 0 alone drawing the whole weights and sending each rank its shards). Nothing is saved.

    .venv/bin/python bench/distributed.py                    # 355M, seq 128, 3 timed steps: minutes
    .venv/bin/python bench/distributed.py --config tiny --steps 5

On 2 cores no speed-up is expected from 2 ranks (each gets one thread instead of two): the
figures are for the record, and for the memory per rank. Writes bench/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import benchkit  # noqa: E402

ROOT = Path(__file__).parents[1]
KJV = ROOT / "tests" / "fixtures" / "kjv.txt.xz"


def worker(args: argparse.Namespace) -> None:
    """One rank (or the single process): train, time the steps, report to rank 0, which prints JSON."""
    from gpt2kit.training import TrainConfig, Trainer

    config = TrainConfig(data=args.data, out=Path(args.out) / "run", from_scratch=args.config, seq_len=args.seq_len,
                         batch_size=args.batch_size, max_steps=args.warmup + args.steps, dropout=0.0,
                         fsdp=args.fsdp, progress=False, cache_dir=Path(args.out) / "cache")
    trainer = Trainer(config)
    setup_peaks = trainer.world.gather(benchkit.peak_rss_bytes())  # building (and sharding) the model
    seconds = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        trainer.train_step()  # ends with the step's collective: every rank is done with it
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
    peaks = trainer.world.gather(benchkit.peak_rss_bytes())
    if trainer.world.is_main:
        print(json.dumps({"seconds": seconds, "tokens_per_step": trainer.step_tokens, "peak_rss": peaks,
                          "setup_peak_rss": setup_peaks,
                          "threads": __import__("torch").get_num_threads()}))
    trainer.close()


def launch(args: argparse.Namespace, data: Path, out: Path, ranks: int, fsdp: bool) -> dict:
    flags = ["--worker", "--data", str(data), "--out", str(out), "--config", args.config, "--seq-len",
             str(args.seq_len), "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup",
             str(args.warmup), *(["--fsdp"] if fsdp else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    if ranks == 1:
        cmd = [sys.executable, __file__, *flags]
    else:  # one thread per rank: the cores are split between the ranks
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
               __file__, *flags]
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // ranks))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="355M", help="model shape preset (default 355M, GPT-2 medium)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per window (default 128)")
    p.add_argument("--batch-size", type=int, default=1, help="windows per rank per step (default 1)")
    p.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--only", nargs="+", choices=("single", "ddp", "fsdp"), default=["single", "ddp", "fsdp"],
                   help="settings to run (default all three)")
    p.add_argument("--json", type=Path, default=benchkit.RESULTS / "distributed.json", help="where to write results")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fsdp", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    machine = benchkit.machine()
    print(benchkit.describe(machine))
    if warning := benchkit.load_warning(machine):
        print(warning)
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "kjv.txt"
        data.write_bytes(lzma.decompress(KJV.read_bytes()))
        for key, name, ranks, fsdp in (("single", "1 process", 1, False), ("ddp", "DDP, 2 ranks", 2, False),
                                       ("fsdp", "FSDP, 2 ranks", 2, True)):
            if key not in args.only:
                continue
            r = launch(args, data, Path(tmp) / name.replace(" ", "").replace(",", ""), ranks, fsdp)
            rates = [r["tokens_per_step"] / s for s in r["seconds"]]
            results[name] = {**r, "tokens_per_s": rates}
            peaks = " / ".join(f"{b / 2**30:.2f}" for b in r["peak_rss"])
            setup = " / ".join(f"{b / 2**30:.2f}" for b in r["setup_peak_rss"])
            rows.append([name, f"{ranks} x {args.batch_size} x {args.seq_len}", r["threads"],
                         f"{statistics.median(rates):,.0f}", f"{min(rates):,.0f}-{max(rates):,.0f}", setup, peaks])
            print(f"{name}: {statistics.median(rates):,.0f} tokens/s, peak RSS per rank {peaks} GiB", flush=True)
    print(f"\n{args.config}, seq {args.seq_len}, fp32, {args.steps} timed steps after {args.warmup}:\n")
    print(benchkit.markdown_table(["setting", "windows per step", "threads per rank", "tokens/s (median)",
                                   "min-max", "peak RSS per rank after set-up (GiB)",
                                   "peak RSS per rank (GiB)"], rows))
    benchkit.write_json(args.json, {"machine": machine, "settings": vars(args) | {"json": str(args.json)},
                                    "results": results})


if __name__ == "__main__":
    main()
