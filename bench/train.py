"""Training speed and memory: gpt2kit vs transformers with the same options, interleaved step by step.

Each configuration (precision x gradient checkpointing x dropout) is run by two worker
processes, one per library, alive side by side so that each peak RSS is its own. Both get the
same options: the same random weights (one folder both load), the same dropout on embeddings,
attention and residuals, bf16 autocast or none, torch.optim.AdamW(fused=True) at lr 1e-4 with
gradient clipping at 1.0, the same allocator setting, the same random token batches. transformers
computes its own loss (labels shifted by the caller, so both predict the same tokens); gpt2kit
runs lm_loss (its fused LM head + cross-entropy) as `gpt2kit finetune` does.

Before anything is timed, both compute the loss of the first batch with dropout off (eval mode):
in fp32 they must agree within 1e-4; with bf16 autocast also within 1e-2 under autocast (the two
implementations round differently), and each side's bf16 loss must differ from its fp32 loss
(autocast in effect). Otherwise nothing is timed (exit 2). Then --warmup untimed steps, then
--repeats timed steps of each, alternating: transformers, gpt2kit, transformers, gpt2kit, ...
A step is forward, backward, clipping, optimizer step and zero_grad, timed inside its worker.
Prints per configuration the median tokens/s with min-max over the steps, the ratio
gpt2kit / transformers with the min-max of the per-round ratios, and each peak RSS; writes every
step's seconds and loss and the machine to a JSON file (default bench/results/train.json).

    .venv/bin/python bench/train.py          # --quick: seq 256, 5 repeats, dropout 0.1, no checkpointing
    .venv/bin/python bench/train.py --full   # seq 1024, 7 repeats, dropout 0.1 and 0, checkpointing off and on
    .venv/bin/python bench/train.py --precision fp32 bf16 --checkpointing on --dropout 0 --repeats 9

On a quiet 2-core AVX2 machine, fp32: --quick takes 1-2 minutes, --full 12-15 minutes.
Precision defaults to fp32, and bf16 too on CPUs with native bf16 matrix instructions (AVX512-BF16
or AMX): elsewhere bf16 matrix products run tens of times slower than fp32 and one bf16 step of
the 124M shape at seq 1024 takes several minutes.

Freed memory: as `gpt2kit finetune` does, malloc keeps freed memory for reuse (gpt2kit.host_memory)
unless checkpointing puts memory first; --freed-memory keep or release decides for both. MKL's
reproducible mode, which `gpt2kit finetune` turns on, is left off for both. gpt2kit's
memory-saving options that transformers has no counterpart for (LoRA adapters, bf16 AdamW
moments) run with --impl gpt2kit, timed alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

# |loss difference| allowed on the same batch, dropout off. Measured: fp32 0 (124M, seq 64); bf16
# autocast 1.6e-3 (124M, seq 32) and 1.2e-4 (tiny), from where each implementation rounds.
LOSS_TOLERANCE = {"fp32": 1e-4, "bf16": 1e-2}
MODES = {  # defaults of --quick and --full; flags given on the command line win
    "quick": {"seq_len": 256, "repeats": 5, "dropout": [0.1], "checkpointing": ["off"]},
    "full": {"seq_len": 1024, "repeats": 7, "dropout": [0.1, 0.0], "checkpointing": ["off", "on"]},
}
IMPLS = ("transformers", "gpt2kit")


# ---- the worker: one library, one configuration, commands on stdin, JSON lines on stdout ----

def worker(spec: dict) -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, not into the replies
    from gpt2kit.host_memory import keep_freed_memory

    kept = keep_freed_memory(default=spec["keep_freed_memory"])  # before the large allocations
    import torch

    torch.manual_seed(spec["seed"])  # dropout masks
    p, seq, precision = spec["dropout"], spec["seq_len"], spec["precision"]
    if spec["impl"] == "transformers":
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        model = transformers.GPT2LMHeadModel.from_pretrained(
            spec["weights"], embd_pdrop=p, attn_pdrop=p, resid_pdrop=p, use_cache=False).train()
        if spec["checkpointing"]:  # non-reentrant, as gpt2kit's; the method's name changed in transformers 5
            enable = getattr(model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable({"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

        def loss_of(x, y):  # labels given already shifted: the same targets as gpt2kit's
            return model(input_ids=x, labels=y, shift_labels=y).loss
    else:
        from gpt2kit import GPT2
        from gpt2kit.training import add_lora, lm_loss

        model = GPT2.from_pretrained(spec["weights"])
        model.set_dropout(p)
        model.train()
        model.gradient_checkpointing = spec["checkpointing"]
        if spec["lora_rank"]:
            add_lora(model, spec["lora_rank"])

        def loss_of(x, y):
            return lm_loss(model, x, y)
    params = [q for q in model.parameters() if q.requires_grad]
    if spec["adam_state"] == "bf16":
        from gpt2kit.training.adamw import AdamWLowMemory

        opt = AdamWLowMemory(params, lr=1e-4)
    else:
        opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    data = torch.randint(0, model.config.vocab_size, (spec["steps"], spec["batch_size"], seq + 1), generator=gen)
    step = 0

    def send(**fields) -> None:
        reply.write(json.dumps(fields) + "\n")

    send(ready=True, freed_memory_kept=kept, threads=torch.get_num_threads(), trained=sum(q.numel() for q in params))
    for line in sys.stdin:
        command = line.strip()
        if command == "check":  # dropout off, no gradients: the two models' arithmetic alone
            model.eval()
            with torch.no_grad():
                fp32 = loss_of(data[0, :, :-1], data[0, :, 1:]).item()
                with autocast:
                    loss = loss_of(data[0, :, :-1], data[0, :, 1:]).item() if precision == "bf16" else fp32
            model.train()
            send(loss=loss, fp32_loss=fp32)
        elif command == "step":
            x, y = data[step % len(data), :, :-1], data[step % len(data), :, 1:]
            start = time.perf_counter()
            with autocast:
                loss = loss_of(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - start
            step += 1
            send(seconds=seconds, loss=loss.item())
        elif command == "finish":
            send(peak_rss=benchkit.peak_rss_bytes())
            return
        else:
            raise SystemExit(f"unknown command {command!r}")


class Worker:
    """A worker process of this script, driven one command at a time."""

    def __init__(self, spec: dict):
        self.name = spec["impl"]
        env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise SystemExit(f"the {self.name} worker stopped (exit code {self.proc.returncode}; its error is above)")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ---- the parent: configurations, the check, interleaved steps, tables ----

def run_configuration(conf: dict, args: argparse.Namespace, weights: str) -> dict:
    keep = {"keep": True, "release": False, "auto": not conf["checkpointing"]}[args.freed_memory]
    spec = {**conf, "weights": weights, "seq_len": args.seq_len, "batch_size": args.batch_size, "seed": args.seed,
            "steps": args.warmup + args.repeats, "keep_freed_memory": keep, "lora_rank": args.lora_rank,
            "adam_state": args.adam_state}
    workers = [Worker({**spec, "impl": impl}) for impl in args.impl]
    try:
        ready = {w.name: w.read() for w in workers}
        result = {**conf, "workers": ready}
        if len(workers) == 2:
            result["check"] = check({w.name: w.ask("check") for w in workers}, conf)
        losses = {w.name: [] for w in workers}

        def stepper(w: Worker):
            def run() -> float:
                out = w.ask("step")
                losses[w.name].append(out["loss"])
                return out["seconds"]
            return run

        seconds = benchkit.interleave({w.name: stepper(w) for w in workers}, args.repeats, args.warmup)
        result.update(seconds=seconds, losses=losses, peak_rss={w.name: w.ask("finish")["peak_rss"] for w in workers})
    finally:
        for w in workers:
            w.close()
    tokens = args.seq_len * args.batch_size
    tps = {impl: benchkit.rates(s, tokens) for impl, s in result["seconds"].items()}
    result["tokens_per_s"] = {impl: benchkit.summary(v) for impl, v in tps.items()}
    if len(workers) == 2:
        result["ratio"] = benchkit.summary(benchkit.paired_ratios(tps["gpt2kit"], tps["transformers"]))
    return result


def check(losses: dict[str, dict], conf: dict) -> dict:
    """The two sides' losses on the first batch, dropout off: the same in fp32 within 1e-4, and with bf16
    autocast the same within its tolerance and different from each side's fp32 loss (autocast in effect)."""
    fp32 = {impl: out["fp32_loss"] for impl, out in losses.items()}
    ours = {impl: out["loss"] for impl, out in losses.items()}
    compared = [("fp32", fp32)] + ([("bf16", ours)] if conf["precision"] == "bf16" else [])
    for precision, values in compared:
        gap, tolerance = abs(values["gpt2kit"] - values["transformers"]), LOSS_TOLERANCE[precision]
        if not gap < tolerance:
            benchkit.refuse(f"{label(conf)}: {precision} losses on the same batch with dropout off differ by {gap:.3g} "
                            f"(transformers {values['transformers']:.6f}, gpt2kit {values['gpt2kit']:.6f}; "
                            f"tolerance {tolerance:g})")
        print(f"  {label(conf)}: {precision} loss on the first batch, dropout off: transformers "
              f"{values['transformers']:.6f}, gpt2kit {values['gpt2kit']:.6f} (|difference| {gap:.1e} < {tolerance:g})",
              flush=True)
    for impl in losses if conf["precision"] == "bf16" else ():
        if ours[impl] == fp32[impl]:
            benchkit.refuse(f"{label(conf)}: {impl}'s loss under bf16 autocast equals its fp32 loss: "
                            "autocast had no effect")
    return {"losses": ours, "fp32_losses": fp32, "tolerance": {p: LOSS_TOLERANCE[p] for p, _ in compared}}


def label(conf: dict) -> str:
    return (f"{conf['precision']}, checkpointing {'on' if conf['checkpointing'] else 'off'}, "
            f"dropout {conf['dropout']:g}")


def gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        return worker(json.loads(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="the default: seq 256, 5 repeats, dropout 0.1, no checkpointing (1-2 minutes on a "
                           "quiet 2-core AVX2 machine, fp32)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="seq 1024, 7 repeats, dropout 0.1 and 0, checkpointing off and on (12-15 minutes "
                           "there, fp32)")
    parser.add_argument("--config", default="gpt2", help="size preset (default gpt2, the 124M shape)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (quick 256, full 1024)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"),
                        help="default fp32, and bf16 where the CPU has native bf16 matrix instructions")
    parser.add_argument("--checkpointing", nargs="+", choices=("off", "on"), help="gradient checkpointing")
    parser.add_argument("--dropout", type=float, nargs="+", help="dropout of both models (GPT-2's is 0.1)")
    parser.add_argument("--repeats", type=int, help="timed steps of each library per configuration (quick 5, full 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each first (default 1)")
    parser.add_argument("--freed-memory", choices=("auto", "keep", "release"), default="auto",
                        help="malloc keeps freed memory for reuse, for both (auto: unless checkpointing, "
                             "as gpt2kit finetune does)")
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=list(IMPLS),
                        help="libraries to run (default both; one alone is not checked or compared)")
    parser.add_argument("--lora-rank", type=int, default=0, help="gpt2kit alone (--impl gpt2kit): LoRA adapters")
    parser.add_argument("--adam-state", choices=("fp32", "bf16"), default="fp32",
                        help="gpt2kit alone (--impl gpt2kit): bf16 AdamW moments")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=benchkit.RESULTS / "train.json",
                        help="where the raw timings go (default bench/results/train.json)")
    args = parser.parse_args()
    args.mode = args.mode or "quick"
    for key, value in MODES[args.mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.impl = [impl for impl in IMPLS if impl in args.impl]  # transformers first in each round
    if (args.lora_rank or args.adam_state == "bf16") and args.impl != ["gpt2kit"]:
        parser.error("--lora-rank and --adam-state bf16 have no transformers counterpart: use them with --impl gpt2kit")
    if min(args.repeats, args.seq_len, args.batch_size) < 1 or args.warmup < 0 or args.lora_rank < 0:
        parser.error("--repeats, --seq-len and --batch-size must be >= 1, --warmup and --lora-rank >= 0")

    from gpt2kit import GPT2, GPT2Config  # after the argument checks: torch takes a while to import

    machine, args.precision = benchkit.checked_machine(args.precision, "--precision")
    confs = [{"precision": p, "checkpointing": c == "on", "dropout": d}
             for d in args.dropout for p in args.precision for c in args.checkpointing]
    config = GPT2Config.from_name(args.config)
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:  # the weights both load
        GPT2.from_config(config, seed=args.seed).save_pretrained(tmp)
        for conf in confs:
            begun = time.perf_counter()
            result = run_configuration(conf, args, tmp)
            results.append(result)
            parts = [f"{impl} {benchkit.spread(result['tokens_per_s'][impl])} tok/s, peak RSS "
                     f"{gb(result['peak_rss'][impl])}" for impl in args.impl]
            print(f"  {label(conf)}: {'; '.join(parts)} ({time.perf_counter() - begun:.0f} s)", flush=True)

    optimizer = "AdamW with bf16 moments" if args.adam_state == "bf16" else "AdamW (fused)"
    lora = f", LoRA rank {args.lora_rank}" if args.lora_rank else ""
    steps = "interleaved steps each" if len(args.impl) == 2 else "steps"
    print(f"\nTraining, {args.config} shape, seq {args.seq_len}, batch {args.batch_size}, {optimizer}{lora}; "
          f"median (min-max) of {args.repeats} {steps} after {args.warmup} warm-up"
          f"{', ratio: median (min-max) of the per-round ratios' if len(args.impl) == 2 else ''}; freed memory "
          f"{args.freed_memory}; {benchkit.describe(machine)}\n")
    both = len(args.impl) == 2
    headers = ["dropout", "precision", "checkpointing", *(f"{impl} tok/s" for impl in args.impl)]
    headers += ["gpt2kit / transformers"] if both else []
    headers += [f"{impl} peak RSS" for impl in args.impl]
    rows = []
    for r in results:
        row = [f"{r['dropout']:g}", r["precision"] if r["precision"] == "fp32" else "bf16 autocast",
               "on" if r["checkpointing"] else "off", *(benchkit.spread(r["tokens_per_s"][i]) for i in args.impl)]
        if both:
            row.append(f"{r['ratio']['median']:.2f}x ({r['ratio']['min']:.2f}-{r['ratio']['max']:.2f})")
        rows.append(row + [gb(r["peak_rss"][i]) for i in args.impl])
    print(benchkit.markdown_table(headers, rows) + "\n")
    for r in results:
        if both and r["dropout"] == 0:  # same batches, no dropout: the two loss curves should stay together
            gap = max(abs(a - b) for a, b in zip(r["losses"]["transformers"], r["losses"]["gpt2kit"], strict=True))
            print(f"{label(r)}: the two training losses differ by at most {gap:.2g} over "
                  f"{len(r['losses']['gpt2kit'])} steps")
    path = benchkit.write_json(args.json, {
        "bench": "train", "command": [Path(sys.executable).name, *sys.argv], "machine": machine,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "order": "per configuration: check, warm-up steps, then transformers, gpt2kit, transformers, gpt2kit, ...; "
                 "seconds: the timed steps; losses: every step, warm-up included",
        "ratio": "per round: gpt2kit tok/s / transformers tok/s", "configurations": results,
        "wall_seconds": round(time.perf_counter() - started, 1)})
    print(f"raw timings: {path}")


if __name__ == "__main__":
    main()
