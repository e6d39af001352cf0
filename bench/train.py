"""Training speed and memory: gpt2kit vs transformers, same shape, same data, same run.

Each configuration runs in a fresh process (so its peak RSS is its own): random weights
of a preset, random token windows of --seq-len, AdamW, a warm-up step, then --steps
timed optimizer steps. Prints tokens/s, peak RSS and the ratio to transformers fp32.

    .venv/bin/python bench/train.py [--config gpt2] [--seq-len 1024] [--steps 3] [--dropout 0.1]

gpt2kit rows run as `gpt2kit finetune` does: freed host memory is kept for reuse
(gpt2kit.host_memory) unless checkpointing puts memory first; the row "transformers fp32,
freed memory kept" gives transformers the same allocator setting, to show how much of the
difference that setting is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time, torch
impl, preset, precision = sys.argv[1], sys.argv[2], sys.argv[5]
seq, steps, ckpt, lora = int(sys.argv[3]), int(sys.argv[4]), sys.argv[6] == "1", int(sys.argv[7])
low_mem, dropout, keep = sys.argv[8] == "1", float(sys.argv[9]), sys.argv[10] == "1"
torch.manual_seed(0)
import dataclasses
from gpt2kit import GPT2Config
from gpt2kit.host_memory import keep_freed_memory
if keep:
    keep_freed_memory(default=impl == "transformers" or not ckpt)  # as gpt2kit finetune does
cfg = dataclasses.replace(GPT2Config.from_name(preset), embd_pdrop=dropout, attn_pdrop=dropout, resid_pdrop=dropout)
data = torch.randint(0, cfg.vocab_size, (steps + 1, 1, seq + 1))
if impl == "transformers":
    import transformers
    hf_cfg = transformers.GPT2Config(**{k: v for k, v in cfg.to_hf_dict().items() if k != "architectures"})
    model = transformers.GPT2LMHeadModel(hf_cfg).train()
    if ckpt:
        model.gradient_checkpointing_enable()
    def loss_of(x, y):
        return model(input_ids=x, labels=x).loss  # transformers shifts the labels itself
else:
    from gpt2kit import GPT2
    from gpt2kit.training import add_lora, lm_loss
    model = GPT2.from_config(cfg).train()
    model.gradient_checkpointing = ckpt
    if lora:
        add_lora(model, lora)
    def loss_of(x, y):
        return lm_loss(model, x, y)
params = [p for p in model.parameters() if p.requires_grad]
if low_mem:
    from gpt2kit.training.adamw import AdamWLowMemory
    opt = AdamWLowMemory(params, lr=1e-4)
else:
    opt = torch.optim.AdamW(params, lr=1e-4, fused=impl == "gpt2kit")
auto = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
losses, times = [], []
for i in range(steps + 1):
    x, y = data[i, :, :-1], data[i, :, 1:]
    start = time.perf_counter()
    with auto:
        loss = loss_of(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - start)
    losses.append(loss.item())
print(json.dumps({"tokens_per_s": seq * steps / sum(times[1:]), "losses": losses}))
"""


def run(args: list[str]) -> tuple[dict, float]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{args} failed")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="gpt2")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="embedding, attention and residual dropout of both models (GPT-2's is 0.1)")
    parser.add_argument("--only", default=None,
                        help="comma-separated row names to run (default: the first six; see the list in main)")
    args = parser.parse_args()
    rows = [  # name, impl, precision, checkpointing, lora rank
        ("transformers fp32", "transformers", "fp32", False, 0),
        ("transformers fp32 + checkpointing", "transformers", "fp32", True, 0),
        ("transformers fp32, freed memory kept", "transformers", "fp32", False, 0),
        ("gpt2kit fp32", "gpt2kit", "fp32", False, 0),
        ("gpt2kit bf16 autocast", "gpt2kit", "bf16", False, 0),
        ("gpt2kit bf16 autocast + checkpointing", "gpt2kit", "bf16", True, 0),
        ("gpt2kit fp32 + checkpointing", "gpt2kit", "fp32", True, 0),
        ("gpt2kit bf16 autocast + checkpointing + LoRA r16", "gpt2kit", "bf16", True, 16),
        ("gpt2kit bf16 autocast + checkpointing + bf16 Adam state", "gpt2kit", "bf16", True, -1),
    ]
    default = {r[0] for r in rows[:6]}
    wanted = set(args.only.split(",")) if args.only else default
    rows = [r for r in rows if r[0] in wanted]
    results = []
    for name, impl, precision, ckpt, lora in rows:
        start = time.perf_counter()
        # lora -1 means: no adapters, AdamW moments in bf16
        keep = impl == "gpt2kit" or "memory kept" in name
        out, rss = run([impl, args.config, str(args.seq_len), str(args.steps), precision, "1" if ckpt else "0",
                        str(max(lora, 0)), "1" if lora < 0 else "0", str(args.dropout), "1" if keep else "0"])
        results.append((name, out["tokens_per_s"], rss, out["losses"]))
        print(f"  {name}: {out['tokens_per_s']:.1f} tok/s, peak RSS {rss:.2f} GB "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    base = next((r[1] for r in results if r[0] == "transformers fp32"), None)
    print(f"\nTraining, {args.config} shape, seq {args.seq_len}, batch 1, dropout {args.dropout}, AdamW, "
          f"{args.steps} timed steps\n")
    print("| run | tokens/s | vs transformers fp32 | peak RSS |")
    print("|---|---|---|---|")
    for name, tps, rss, _ in results:
        ratio = f"{tps / base:.2f}x" if base else "-"
        print(f"| {name} | {tps:.1f} | {ratio} | {rss:.2f} GB |")
    curves = {name: losses for name, _, _, losses in results}
    fp32, bf16 = curves.get("gpt2kit fp32"), curves.get("gpt2kit bf16 autocast")
    if fp32 and bf16:  # same weights, data and dropout masks: the difference is bf16's alone
        gap = max(abs(a - b) for a, b in zip(fp32, bf16, strict=True))
        print(f"\nloss, gpt2kit bf16 autocast vs fp32 over {len(fp32)} steps: max |difference| {gap:.4f} "
              f"(fp32 {' '.join(f'{x:.4f}' for x in fp32)})")


if __name__ == "__main__":
    main()
